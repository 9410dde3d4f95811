package deploytest

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	releaseName = "shop"
	namespace   = "shop"
)

var (
	chartDir    = repoPath("charts", "shop")
	kubeVersion = &chartutil.KubeVersion{Version: "v1.34.0", Major: "1", Minor: "34"}
	services    = []string{"gateway", "orders", "payments"}
	ports       = map[string]int32{"gateway": 8000, "payments": 8001, "orders": 8002}
)

// chartCase is one way to install the chart.
type chartCase struct {
	name       string
	valueFiles []string // relative to the repository root
	set        []string // --set
	// externalSecrets are Secrets the case expects to exist outside the chart.
	externalSecrets map[string][]string
	// kubeVersion is helm's --kube-version; "" means kubeVersion above.
	kubeVersion string
}

var chartCases = []chartCase{
	{name: "default"},
	{name: "dev", valueFiles: []string{"tilt/values-dev.yaml"}},
	{name: "ingress", valueFiles: []string{"charts/shop/ci/ingress-values.yaml"}},
	{name: "hpa", valueFiles: []string{"charts/shop/ci/hpa-values.yaml"}},
	{
		name:       "existing-secret",
		valueFiles: []string{"charts/shop/ci/existing-secret-values.yaml"},
		set:        []string{"gateway.image.digest=sha256:" + strings.Repeat("ab", 32)},
		externalSecrets: map[string][]string{
			"shop-orders-env":   {"DATABASE_URL", "REDIS_URL", "INTERNAL_TOKEN"},
			"shop-payments-env": {"database-url", "redis-url", "INTERNAL_TOKEN"},
			"shop-gateway-env":  {"REDIS_URL"},
		},
	},
	{name: "no-telemetry-no-netpol", set: []string{"otel.endpoint=", "networkPolicy.enabled=false", "tests.enabled=false"}},
}

func (c chartCase) values(t *testing.T) map[string]any {
	t.Helper()
	opts := values.Options{Values: c.set}
	for _, f := range c.valueFiles {
		opts.ValueFiles = append(opts.ValueFiles, repoPath(f))
	}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		t.Fatalf("values of %s: %v", c.name, err)
	}
	return vals
}

// render installs the chart client-side (helm template) and decodes the result strictly.
// It returns the release's objects and its hooks (the helm test pod).
func render(vals map[string]any, kubeVersionFlag string) (objects, hooks *manifest, err error) {
	kv := kubeVersion
	if kubeVersionFlag != "" {
		if kv, err = chartutil.ParseKubeVersion(kubeVersionFlag); err != nil {
			return nil, nil, err
		}
	}
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, nil, err
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = kv
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, nil, err
	}
	objects, err = decodeStream("chart", namespace, []byte(rel.Manifest))
	if err != nil {
		return nil, nil, err
	}
	hooks = &manifest{}
	for _, h := range rel.Hooks {
		m, err := decodeStream("chart hook "+h.Path, namespace, []byte(h.Manifest))
		if err != nil {
			return nil, nil, err
		}
		hooks = hooks.add(m)
	}
	return objects, hooks, nil
}

func renderCase(t *testing.T, c chartCase) (objects, hooks *manifest) {
	t.Helper()
	objects, hooks, err := render(c.values(t), c.kubeVersion)
	if err != nil {
		t.Fatalf("render %s: %v", c.name, err)
	}
	return objects, hooks
}

func TestChartLintStrict(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = namespace
			lint.KubeVersion = kubeVersion
			result := lint.Run([]string{chartDir}, c.values(t))
			if result.TotalChartsLinted != 1 {
				t.Fatalf("linted %d charts, want 1", result.TotalChartsLinted)
			}
			for _, msg := range result.Messages {
				t.Logf("lint: %s", msg)
			}
			for _, err := range result.Errors {
				t.Errorf("lint error: %v", err)
			}
			if action.HasWarningsOrErrors(result) {
				t.Errorf("lint reported warnings or errors")
			}
		})
	}
}

// A wrong value must fail at `helm install`, not when a pod starts.
func TestChartRejectsWrongValues(t *testing.T) {
	cases := map[string][]string{
		"latest tag":                 {"image.tag=latest"},
		"latest service tag":         {"orders.image.tag=latest"},
		"misspelt key":               {"gateway.replicaCunt=3"},
		"unknown top-level key":      {"gatway.replicaCount=3"},
		"log level":                  {"logLevel=verbose"},
		"database url scheme":        {"orders.database.url=mysql://orders@db/orders"},
		"no database url":            {"payments.database.url="},
		"redis url scheme":           {"redis.url=http://redis:6379"},
		"otel protocol":              {"otel.protocol=udp"},
		"zero replicas":              {"gateway.replicaCount=0"},
		"no cpu limit":               {"orders.resources.limits.cpu=null"},
		"bad memory quantity":        {"payments.resources.limits.memory=lots"},
		"grace shorter than drain":   {"terminationGracePeriodSeconds=25"},
		"writable root filesystem":   {"containerSecurityContext.readOnlyRootFilesystem=false"},
		"privilege escalation":       {"containerSecurityContext.allowPrivilegeEscalation=true"},
		"root":                       {"podSecurityContext.runAsNonRoot=false"},
		"bad digest":                 {"gateway.image.digest=sha256:1234"},
		"ingress without hosts":      {"gateway.ingress.enabled=true", "gateway.ingress.hosts=null"},
		"hpa min above max":          {"gateway.autoscaling.enabled=true", "gateway.autoscaling.minReplicas=5", "gateway.autoscaling.maxReplicas=3"},
		"pull policy":                {"image.pullPolicy=Sometimes"},
		"port out of range":          {"gateway.port=70000"},
		"pdb percentage":             {"orders.podDisruptionBudget.maxUnavailable=150%"},
		"service type":               {"gateway.service.type=ExternalName"},
		"config variable name":       {"gateway.config.bad-name=1"},
		"existing secret key":        {"orders.existingSecret=x", "orders.existingSecretKeys.databaseURL=a b"},
		"topology spread unsatisfia": {"topologySpread.whenUnsatisfiable=Never"},
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			vals := chartCase{name: name, set: set}.values(t)
			if _, _, err := render(vals, ""); err == nil {
				t.Fatalf("helm install accepted %v", set)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}

func TestChartRender(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			objects, hooks := renderCase(t, c)
			all := objects.add(hooks)
			vals := c.values(t)
			checkWorkloads(t, objects)
			checkServices(t, all)
			checkReferences(t, all, c.externalSecrets)
			checkServiceAccounts(t, objects)
			checkPDBs(t, objects)
			checkHPAs(t, objects, vals)
			checkIngress(t, objects, vals)
			checkHelmTest(t, objects, hooks, vals)
			checkGatewayUpstreams(t, objects)
			checkNamespaces(t, all)
		})
	}
}

func chartWorkloads(t *testing.T, m *manifest) map[string]*appsv1.Deployment {
	t.Helper()
	out := map[string]*appsv1.Deployment{}
	for _, d := range all[appsv1.Deployment](m) {
		out[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d
	}
	if len(out) != len(services) || len(all[appsv1.Deployment](m)) != len(services) {
		t.Fatalf("want one Deployment per service %v, got %v", services, keys(out))
	}
	for _, s := range services {
		if out[s] == nil {
			t.Fatalf("no Deployment for %s", s)
		}
	}
	return out
}

func checkWorkloads(t *testing.T, m *manifest) {
	deployments := chartWorkloads(t, m)
	for svc, d := range deployments {
		t.Run(svc, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			// Rolling update keeps capacity.
			ru := d.Spec.Strategy.RollingUpdate
			if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil {
				t.Fatalf("strategy %v, want RollingUpdate", d.Spec.Strategy.Type)
			}
			if ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxUnavailable.Type != intstr.Int {
				t.Errorf("rollingUpdate.maxUnavailable %v, want 0", ru.MaxUnavailable)
			}
			if ru.MaxSurge == nil || (ru.MaxSurge.Type == intstr.Int && ru.MaxSurge.IntValue() < 1) {
				t.Errorf("rollingUpdate.maxSurge %v, want at least 1", ru.MaxSurge)
			}
			if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
				t.Errorf("selector %v does not select the pod labels %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
			// Pod security.
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("pod automountServiceAccountToken must be false")
			}
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Errorf("pod securityContext.runAsNonRoot must be true")
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod seccompProfile must be RuntimeDefault")
			}
			if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
				t.Errorf("pod runs as uid 0")
			}
			if len(spec.TopologySpreadConstraints) > 0 {
				for _, tsc := range spec.TopologySpreadConstraints {
					if !selects(t, tsc.LabelSelector, d.Spec.Template.Labels) {
						t.Errorf("topology spread on %s does not select the pods", tsc.TopologyKey)
					}
				}
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("want 1 container, got %d", len(spec.Containers))
			}
			c := spec.Containers[0]
			checkContainerSecurity(t, c)
			if reason := imageUnpinned(c.Image); reason != "" {
				t.Errorf("image %s %s", c.Image, reason)
			}
			port, ok := containerPort(c, "http", 0)
			if !ok || port.ContainerPort != ports[svc] {
				t.Errorf("container port http = %v, want %d", port.ContainerPort, ports[svc])
			}
			checkProbes(t, c)
			checkResources(t, c)
			checkRuntimeEnv(t, c, svc)
			checkTmp(t, spec, c)
			checkTermination(t, m, spec, c)
		})
	}
}

func checkContainerSecurity(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s is privileged", c.Name)
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %s: capabilities must drop ALL and add none, got %+v", c.Name, sc.Capabilities)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container %s: seccompProfile must be RuntimeDefault", c.Name)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("container %s: runAsNonRoot must be true", c.Name)
	}
}

func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	want := map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/livez": c.LivenessProbe}
	for path, p := range want {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
			t.Errorf("probe for %s missing or wrong: %+v", path, p)
			continue
		}
		if _, ok := containerPort(c, p.HTTPGet.Port.StrVal, int32(p.HTTPGet.Port.IntValue())); !ok {
			t.Errorf("probe %s targets undeclared port %s", path, p.HTTPGet.Port.String())
		}
	}
	if c.StartupProbe == nil || c.StartupProbe.HTTPGet == nil {
		t.Fatalf("no startup probe")
	}
	budget := c.StartupProbe.PeriodSeconds * c.StartupProbe.FailureThreshold
	if budget < 30 {
		t.Errorf("startup probe allows %ds, want at least 30s for migrations", budget)
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("container %s: %s request and limit are required", c.Name, r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("container %s: %s request %s above limit %s", c.Name, r, req.String(), lim.String())
		}
	}
}

func checkRuntimeEnv(t *testing.T, c corev1.Container, svc string) {
	t.Helper()
	for name, resource := range map[string]string{"GOMAXPROCS": "limits.cpu", "GOMEMLIMIT": "limits.memory"} {
		e, ok := envVar(c, name)
		if !ok || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil {
			t.Errorf("%s must come from a resourceFieldRef", name)
			continue
		}
		ref := e.ValueFrom.ResourceFieldRef
		if ref.Resource != resource || (ref.ContainerName != "" && ref.ContainerName != c.Name) {
			t.Errorf("%s = %+v, want %s of container %s", name, ref, resource, c.Name)
		}
		if !ref.Divisor.IsZero() && ref.Divisor.Value() != 1 {
			t.Errorf("%s divisor %s: Go expects plain units", name, ref.Divisor.String())
		}
	}
	// Downward-API variables are defined before OTEL_RESOURCE_ATTRIBUTES expands them.
	defined := map[string]bool{}
	for _, e := range c.Env {
		if e.Name == "OTEL_RESOURCE_ATTRIBUTES" {
			for _, m := range regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
				if !defined[m[1]] {
					t.Errorf("OTEL_RESOURCE_ATTRIBUTES uses $(%s) before it is defined", m[1])
				}
			}
			for _, attr := range []string{"k8s.pod.name", "k8s.namespace.name", "k8s.node.name", "k8s.deployment.name", "service.version"} {
				if !strings.Contains(e.Value, attr+"=") {
					t.Errorf("OTEL_RESOURCE_ATTRIBUTES lacks %s: %s", attr, e.Value)
				}
			}
		}
		defined[e.Name] = true
	}
	if !defined["OTEL_RESOURCE_ATTRIBUTES"] {
		t.Errorf("no OTEL_RESOURCE_ATTRIBUTES")
	}
	for name, path := range map[string]string{"K8S_POD_NAME": "metadata.name", "K8S_NAMESPACE_NAME": "metadata.namespace", "K8S_NODE_NAME": "spec.nodeName"} {
		e, ok := envVar(c, name)
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			t.Errorf("%s must come from the downward API (%s)", name, path)
		}
	}
	for _, name := range []string{"DATABASE_URL", "REDIS_URL"} {
		// The gateway has no database; it has Redis for its rate limits.
		wantSecret := svc != "gateway" || name == "REDIS_URL"
		e, ok := envVar(c, name)
		if ok != wantSecret {
			t.Errorf("%s present=%v, want %v", name, ok, wantSecret)
		}
		if ok && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s must come from a Secret", name)
		}
	}
}

func checkTmp(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != "/tmp" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.EmptyDir != nil {
				return
			}
		}
	}
	t.Errorf("container %s has no writable emptyDir at /tmp", c.Name)
}

// The grace period must outlast the preStop sleep plus the service's drain (SHUTDOWN_TIMEOUT).
func checkTermination(t *testing.T, m *manifest, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	config := envFromConfig(t, m, c)
	drain, err := time.ParseDuration(config["SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", config["SHUTDOWN_TIMEOUT"], err)
	}
	need := drain
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil {
			t.Errorf("preStop must be a sleep action: the image has no shell")
		} else {
			need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("no terminationGracePeriodSeconds")
	}
	if grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second; grace <= need {
		t.Errorf("terminationGracePeriodSeconds %v must exceed preStop + SHUTDOWN_TIMEOUT = %v", grace, need)
	}
}

// envFromConfig is the container's configuration: its ConfigMaps (envFrom) and literal env.
func envFromConfig(t *testing.T, m *manifest, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		cm := find[corev1.ConfigMap](m, ef.ConfigMapRef.Name)
		if cm == nil {
			t.Fatalf("container %s: envFrom ConfigMap %s not rendered", c.Name, ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			out[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			out[e.Name] = e.Value
		}
	}
	return out
}

func checkServices(t *testing.T, m *manifest) {
	for _, s := range all[corev1.Service](m) {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s has no selector", s.Name)
			continue
		}
		var matched []workload
		for _, w := range m.workloads() {
			if w.kind != "Pod" && labelsMatch(s.Spec.Selector, w.labels) {
				matched = append(matched, w)
			}
		}
		if len(matched) != 1 {
			t.Errorf("Service %s selector %v matches %d workloads %v, want exactly 1", s.Name, s.Spec.Selector, len(matched), matched)
			continue
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if _, ok := podPort(matched[0].spec, target.StrVal, target.IntVal); !ok {
				t.Errorf("Service %s port %s targets %s, not a container port of %s", s.Name, p.Name, target.String(), matched[0])
			}
		}
	}
}

func labelsMatch(selector, set map[string]string) bool {
	for k, v := range selector {
		if set[k] != v {
			return false
		}
	}
	return true
}

// checkReferences: every Secret and ConfigMap (and key) a pod refers to exists, unless the
// case declares it external, in which case only the declared keys may be used.
func checkReferences(t *testing.T, m *manifest, external map[string][]string) {
	secretKeys := func(name string) (map[string]bool, bool) {
		if keys, ok := external[name]; ok {
			out := map[string]bool{}
			for _, k := range keys {
				out[k] = true
			}
			return out, true
		}
		s := find[corev1.Secret](m, name)
		if s == nil {
			return nil, false
		}
		out := map[string]bool{}
		for k := range s.Data {
			out[k] = true
		}
		for k := range s.StringData {
			out[k] = true
		}
		return out, true
	}
	configKeys := func(name string) (map[string]bool, bool) {
		cm := find[corev1.ConfigMap](m, name)
		if cm == nil {
			return nil, false
		}
		out := map[string]bool{}
		for k := range cm.Data {
			out[k] = true
		}
		for k := range cm.BinaryData {
			out[k] = true
		}
		return out, true
	}
	check := func(w workload, kind, name, key string, optional *bool) {
		if optional != nil && *optional {
			return
		}
		lookup := configKeys
		if kind == "Secret" {
			lookup = secretKeys
		}
		keys, ok := lookup(name)
		if !ok {
			t.Errorf("%s refers to %s %s, which does not exist", w, kind, name)
			return
		}
		if key != "" && !keys[key] {
			t.Errorf("%s refers to key %s of %s %s, which has keys %v", w, key, kind, name, keys)
		}
	}
	for _, w := range m.workloads() {
		for _, c := range append(append([]corev1.Container{}, w.spec.InitContainers...), w.spec.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					check(w, "Secret", r.Name, r.Key, r.Optional)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					check(w, "ConfigMap", r.Name, r.Key, r.Optional)
				}
			}
			for _, ef := range c.EnvFrom {
				if r := ef.SecretRef; r != nil {
					check(w, "Secret", r.Name, "", r.Optional)
				}
				if r := ef.ConfigMapRef; r != nil {
					check(w, "ConfigMap", r.Name, "", r.Optional)
				}
			}
		}
		for _, v := range w.spec.Volumes {
			if v.ConfigMap != nil {
				check(w, "ConfigMap", v.ConfigMap.Name, "", v.ConfigMap.Optional)
				for _, item := range v.ConfigMap.Items {
					check(w, "ConfigMap", v.ConfigMap.Name, item.Key, v.ConfigMap.Optional)
				}
			}
			if v.Secret != nil {
				check(w, "Secret", v.Secret.SecretName, "", v.Secret.Optional)
				for _, item := range v.Secret.Items {
					check(w, "Secret", v.Secret.SecretName, item.Key, v.Secret.Optional)
				}
			}
		}
	}
	// No Secret or ConfigMap rendered for nothing.
	used := map[string]bool{}
	for _, w := range m.workloads() {
		for _, c := range w.spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					used["Secret/"+e.ValueFrom.SecretKeyRef.Name] = true
				}
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					used["ConfigMap/"+e.ValueFrom.ConfigMapKeyRef.Name] = true
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					used["ConfigMap/"+ef.ConfigMapRef.Name] = true
				}
				if ef.SecretRef != nil {
					used["Secret/"+ef.SecretRef.Name] = true
				}
			}
		}
		for _, v := range w.spec.Volumes {
			if v.ConfigMap != nil {
				used["ConfigMap/"+v.ConfigMap.Name] = true
			}
			if v.Secret != nil {
				used["Secret/"+v.Secret.SecretName] = true
			}
		}
	}
	for _, o := range m.objects {
		if (o.kind == "Secret" || o.kind == "ConfigMap") && !used[o.kind+"/"+o.name] {
			t.Errorf("%s is used by no workload", o)
		}
	}
}

func checkServiceAccounts(t *testing.T, m *manifest) {
	for _, d := range all[appsv1.Deployment](m) {
		name := d.Spec.Template.Spec.ServiceAccountName
		sa := find[corev1.ServiceAccount](m, name)
		if name == "" || sa == nil {
			t.Errorf("Deployment %s uses ServiceAccount %q, which is not rendered", d.Name, name)
			continue
		}
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s must not automount its token", sa.Name)
		}
	}
}

func checkPDBs(t *testing.T, m *manifest) {
	pdbs := all[policyv1.PodDisruptionBudget](m)
	for _, d := range all[appsv1.Deployment](m) {
		n := 0
		for _, p := range pdbs {
			if selects(t, p.Spec.Selector, d.Spec.Template.Labels) {
				n++
				if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
					t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", p.Name)
				}
			}
		}
		if n != 1 {
			t.Errorf("Deployment %s is covered by %d PodDisruptionBudgets, want 1", d.Name, n)
		}
	}
}

func checkHPAs(t *testing.T, m *manifest, vals map[string]any) {
	hpas := all[autoscalingv2.HorizontalPodAutoscaler](m)
	for _, svc := range services {
		enabled := lookup(vals, svc, "autoscaling", "enabled") == true
		var hpa *autoscalingv2.HorizontalPodAutoscaler
		for _, h := range hpas {
			if h.Name == releaseName+"-"+svc {
				hpa = h
			}
		}
		d := find[appsv1.Deployment](m, releaseName+"-"+svc)
		if (hpa != nil) != enabled {
			t.Errorf("%s: HPA rendered=%v, autoscaling.enabled=%v", svc, hpa != nil, enabled)
			continue
		}
		if hpa == nil {
			if d.Spec.Replicas == nil {
				t.Errorf("%s: no HPA and no replicas", svc)
			}
			continue
		}
		if d.Spec.Replicas != nil {
			t.Errorf("%s: Deployment sets replicas although an HPA scales it", svc)
		}
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != d.Name {
			t.Errorf("%s: HPA targets %+v", svc, ref)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 || *hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
			t.Errorf("%s: HPA replicas %v..%d", svc, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		if _, ok := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("%s: CPU utilisation needs a CPU request", svc)
		}
	}
}

func checkIngress(t *testing.T, m *manifest, vals map[string]any) {
	ings := all[networkingv1.Ingress](m)
	enabled := lookup(vals, "gateway", "ingress", "enabled") == true
	if (len(ings) == 1) != enabled || len(ings) > 1 {
		t.Fatalf("%d Ingresses rendered, ingress.enabled=%v", len(ings), enabled)
	}
	for _, ing := range ings {
		if len(ing.Spec.Rules) == 0 {
			t.Errorf("Ingress %s has no rules", ing.Name)
		}
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				svc := find[corev1.Service](m, b.Name)
				if svc == nil || svc.Name != releaseName+"-gateway" {
					t.Errorf("Ingress backend %s is not the gateway Service", b.Name)
					continue
				}
				found := false
				for _, sp := range svc.Spec.Ports {
					if (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Name == "" && sp.Port == b.Port.Number) {
						found = true
					}
				}
				if !found {
					t.Errorf("Ingress backend port %+v is not a port of Service %s", b.Port, svc.Name)
				}
			}
		}
		for _, tls := range ing.Spec.TLS {
			if tls.SecretName == "" {
				t.Errorf("Ingress TLS entry without secretName")
			}
		}
	}
}

// checkHelmTest: the helm test pod runs the gateway image's healthcheck subcommand against the
// gateway Service's /readyz.
func checkHelmTest(t *testing.T, m, hooks *manifest, vals map[string]any) {
	pods := all[corev1.Pod](hooks)
	enabled := lookup(vals, "tests", "enabled") != false
	if (len(pods) == 1) != enabled {
		t.Fatalf("%d test pods rendered, tests.enabled=%v", len(pods), enabled)
	}
	for _, pod := range pods {
		if pod.Annotations["helm.sh/hook"] != "test" {
			t.Errorf("pod %s is not a test hook", pod.Name)
		}
		if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("test pod restartPolicy %s, want Never", pod.Spec.RestartPolicy)
		}
		gw := find[appsv1.Deployment](m, releaseName+"-gateway")
		c := pod.Spec.Containers[0]
		if c.Image != gw.Spec.Template.Spec.Containers[0].Image {
			t.Errorf("test pod image %s, want the gateway's %s", c.Image, gw.Spec.Template.Spec.Containers[0].Image)
		}
		checkContainerSecurity(t, c)
		if len(c.Command) != 0 || len(c.Args) != 2 || c.Args[0] != "healthcheck" {
			t.Fatalf("test pod runs %v %v, want the image's entrypoint with [healthcheck URL]", c.Command, c.Args)
		}
		checkServiceURL(t, m, "helm test URL", c.Args[1], releaseName+"-gateway")
		if u, _ := url.Parse(c.Args[1]); u == nil || u.Path != "/readyz" {
			t.Errorf("helm test checks %s, want /readyz", c.Args[1])
		}
	}
}

// checkServiceURL: an http URL names a rendered Service and one of its ports.
func checkServiceURL(t *testing.T, m *manifest, what, raw, wantService string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		t.Errorf("%s %q is not an http URL", what, raw)
		return
	}
	host := strings.TrimSuffix(strings.TrimSuffix(u.Hostname(), ".svc.cluster.local"), "."+namespace)
	if wantService != "" && host != wantService {
		t.Errorf("%s %s: host %s, want Service %s", what, raw, host, wantService)
	}
	svc := find[corev1.Service](m, host)
	if svc == nil {
		t.Errorf("%s %s: no Service %s", what, raw, host)
		return
	}
	port, _ := strconv.Atoi(u.Port())
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == port {
			return
		}
	}
	t.Errorf("%s %s: Service %s has no port %d", what, raw, host, port)
}

func checkGatewayUpstreams(t *testing.T, m *manifest) {
	gw := find[appsv1.Deployment](m, releaseName+"-gateway")
	config := envFromConfig(t, m, gw.Spec.Template.Spec.Containers[0])
	checkServiceURL(t, m, "ORDERS_URL", config["ORDERS_URL"], releaseName+"-orders")
	checkServiceURL(t, m, "PAYMENTS_URL", config["PAYMENTS_URL"], releaseName+"-payments")
	for _, svc := range services {
		d := find[appsv1.Deployment](m, releaseName+"-"+svc)
		config := envFromConfig(t, m, d.Spec.Template.Spec.Containers[0])
		if config["OTEL_SERVICE_NAME"] != svc {
			t.Errorf("%s: OTEL_SERVICE_NAME %q", svc, config["OTEL_SERVICE_NAME"])
		}
		if config["HTTP_ADDR"] != fmt.Sprintf(":%d", ports[svc]) {
			t.Errorf("%s: HTTP_ADDR %q, want :%d", svc, config["HTTP_ADDR"], ports[svc])
		}
		if ep := config["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep != "" {
			if config["OTEL_EXPORTER_OTLP_PROTOCOL"] == "" {
				t.Errorf("%s: OTEL endpoint without protocol", svc)
			}
		}
		if lvl := config["LOG_LEVEL"]; lvl != "debug" && lvl != "info" && lvl != "warn" && lvl != "error" {
			t.Errorf("%s: LOG_LEVEL %q", svc, lvl)
		}
	}
	// orders and payments each get their own database.
	dbs := map[string]string{}
	for _, svc := range []string{"orders", "payments"} {
		if s := find[corev1.Secret](m, releaseName+"-"+svc); s != nil {
			u, err := url.Parse(s.StringData["DATABASE_URL"])
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				t.Errorf("%s DATABASE_URL %q", svc, s.StringData["DATABASE_URL"])
				continue
			}
			db := u.Host + u.Path
			if other, dup := dbs[db]; dup {
				t.Errorf("%s and %s share database %s", svc, other, db)
			}
			dbs[db] = svc
		}
	}
}

func checkNamespaces(t *testing.T, m *manifest) {
	for _, o := range m.objects {
		if o.namespace != namespace {
			t.Errorf("%s is not in the release namespace", o)
		}
	}
}

func lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
