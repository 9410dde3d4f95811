// Package kubeapitest applies the shop's Kubernetes manifests — the dev overlay of kustomize/
// and the Helm chart with each of its values files — to a real kube-apiserver on a real etcd,
// with kube-controller-manager beside them and Pod Security "restricted" enforced, and checks
// that the server accepts them without error or warning, that every workload's Pods are
// admitted, and that a deliberately flawed copy is refused. There is no kubelet: Pods stay
// Pending, which is enough for admission to judge them.
//
// It is its own module, outside go.work, like services/deploytest. The binaries are built
// from the wrapper modules in bins/ and cached by version (package kubebins); the tests build
// them when missing, or build them ahead of time with `make kube-bins`. Run it with GOWORK=off:
//
//	cd services/kubeapitest && GOWORK=off go test ./...
package kubeapitest
