// Package deploytest checks the shop's deployment artefacts — the Helm chart, the kustomize
// infrastructure, the Tiltfile and the Dockerfiles — with no cluster and no container engine:
// it renders them with the same Go libraries the tools use, decodes every object strictly into
// the Kubernetes API types and asserts the platform rules on the result.
//
// It is its own module, outside go.work, so that Helm's and kustomize's dependencies never
// raise the services' module versions. Run it with GOWORK=off:
//
//	cd services/deploytest && GOWORK=off go test ./...
package deploytest
