package deploytest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizeBuild builds a kustomization directory as `kustomize build
// --load-restrictor=LoadRestrictionsNone` does (the collector's ConfigMap comes from the root
// otel-collector.yaml, outside the kustomization) and decodes the result strictly.
func kustomizeBuild(dir string) (*manifest, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	out, err := resources.AsYaml()
	if err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(repoRoot, dir)
	return decodeStream("kustomize "+rel, "", out)
}

// overlays are every directory under kustomize/overlays.
func overlays(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(repoPath("kustomize", "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatal("no overlays")
	}
	return out
}

func components(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(repoPath("kustomize", "components"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func devInfra(t *testing.T) *manifest {
	t.Helper()
	m, err := kustomizeBuild(repoPath("kustomize", "overlays", "dev"))
	if err != nil {
		t.Fatalf("kustomize build overlays/dev: %v", err)
	}
	return m
}

func TestKustomizeOverlays(t *testing.T) {
	for _, overlay := range overlays(t) {
		t.Run(overlay, func(t *testing.T) {
			m, err := kustomizeBuild(repoPath("kustomize", "overlays", overlay))
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			checkInfra(t, m)
		})
	}
}

// Every component builds on top of the dev overlay, and does what it says.
func TestKustomizeComponents(t *testing.T) {
	comps := components(t)
	if len(comps) == 0 {
		t.Fatal("no components")
	}
	for _, comp := range comps {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			rel := func(target string) string {
				r, err := filepath.Rel(dir, target)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
components:
  - %s
`, rel(repoPath("kustomize", "overlays", "dev")), rel(repoPath("kustomize", "components", comp)))
			if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := kustomizeBuild(dir)
			if err != nil {
				t.Fatalf("build dev + %s: %v", comp, err)
			}
			checkInfra(t, m)
			switch comp {
			case "ephemeral-storage":
				for _, s := range all[appsv1.StatefulSet](m) {
					if len(s.Spec.VolumeClaimTemplates) != 0 {
						t.Errorf("StatefulSet %s still claims volumes", s.Name)
					}
				}
			case "image-mirror":
				for _, w := range m.workloads() {
					for _, c := range w.spec.Containers {
						if !strings.HasPrefix(c.Image, "registry.example.internal/mirror/") {
							t.Errorf("%s image %s is not mirrored", w, c.Image)
						}
					}
				}
			default:
				t.Errorf("component %s has no test: say here what it must do", comp)
			}
		})
	}
}

func checkInfra(t *testing.T, m *manifest) {
	t.Helper()
	wantWorkloads := map[string]string{
		"postgresql": "StatefulSet", "redis": "StatefulSet",
		"otel-collector": "Deployment", "jaeger": "Deployment",
	}
	got := map[string]string{}
	for _, w := range m.workloads() {
		got[w.name] = w.kind
	}
	for name, kind := range wantWorkloads {
		if got[name] != kind {
			t.Errorf("want %s %s, got %q", kind, name, got[name])
		}
	}
	for _, o := range m.objects {
		if o.kind != "Namespace" && o.namespace != namespace {
			t.Errorf("%s is not in namespace %s", o, namespace)
		}
	}
	ns := find[corev1.Namespace](m, namespace)
	if ns == nil {
		t.Errorf("namespace %s is not created", namespace)
	}
	checkServices(t, m)
	checkReferences(t, m, nil)
	for _, w := range m.workloads() {
		checkRestrictedPod(t, w)
	}
	checkPostgres(t, m)
	checkRedis(t, m)
	checkCollector(t, m)
	checkJaeger(t, m)
	checkClaimsGoWithStatefulSets(t, m)
}

// checkClaimsGoWithStatefulSets: Tilt keeps namespaces on `tilt down` (unless
// --delete-namespaces), so a StatefulSet's claims must go with the StatefulSet; otherwise the
// next `tilt up` finds the old data and PostgreSQL's init script never runs again.
func checkClaimsGoWithStatefulSets(t *testing.T, m *manifest) {
	t.Helper()
	for _, s := range all[appsv1.StatefulSet](m) {
		if len(s.Spec.VolumeClaimTemplates) == 0 {
			continue
		}
		p := s.Spec.PersistentVolumeClaimRetentionPolicy
		if p == nil || p.WhenDeleted != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			t.Errorf("StatefulSet %s: persistentVolumeClaimRetentionPolicy %+v, want whenDeleted: Delete (tilt down keeps the namespace)", s.Name, p)
		}
	}
}

// checkRestrictedPod: the namespace enforces the "restricted" Pod Security Standard; every
// container is pinned, limited and probed.
func checkRestrictedPod(t *testing.T, w workload) {
	t.Helper()
	psc := w.spec.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault", w)
	}
	if w.spec.AutomountServiceAccountToken == nil || *w.spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", w)
	}
	for _, c := range w.spec.Containers {
		nonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
		sc := c.SecurityContext
		if sc != nil && sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if !nonRoot {
			t.Errorf("%s/%s: runAsNonRoot must be true", w, c.Name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s/%s: allowPrivilegeEscalation must be false", w, c.Name)
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s/%s: capabilities must drop ALL", w, c.Name)
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s/%s: readOnlyRootFilesystem must be true", w, c.Name)
		}
		if reason := imageUnpinned(c.Image); reason != "" {
			t.Errorf("%s/%s: image %s %s", w, c.Name, c.Image, reason)
		}
		checkResources(t, c)
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s/%s: readiness and liveness probes are required", w, c.Name)
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil {
				if _, ok := containerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal); !ok {
					t.Errorf("%s/%s: probe targets undeclared port %s", w, c.Name, p.HTTPGet.Port.String())
				}
			}
		}
	}
}

func checkPostgres(t *testing.T, m *manifest) {
	t.Helper()
	pg := find[appsv1.StatefulSet](m, "postgresql")
	if pg == nil {
		return
	}
	c := pg.Spec.Template.Spec.Containers[0]
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	data := mounts["/var/lib/postgresql/data"]
	if data == "" {
		t.Errorf("postgresql: nothing mounted at /var/lib/postgresql/data")
	}
	claimed := slices.ContainsFunc(pg.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == data })
	ephemeral := slices.ContainsFunc(pg.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == data && v.EmptyDir != nil })
	if claimed == ephemeral {
		t.Errorf("postgresql data volume %q: claimed=%v emptyDir=%v, want exactly one", data, claimed, ephemeral)
	}
	if mounts["/docker-entrypoint-initdb.d"] == "" {
		t.Errorf("postgresql: no init scripts mounted")
	}
	pgdata, _ := envVar(c, "PGDATA")
	if !strings.HasPrefix(pgdata.Value, "/var/lib/postgresql/data/") {
		t.Errorf("PGDATA %q must be a subdirectory of the data volume", pgdata.Value)
	}
}

// checkRedis: Redis carries the payment messages, so it keeps them across restarts in an
// append-only file, fsynced every second, in the data volume (/data is the image's working
// directory, where it writes the file).
func checkRedis(t *testing.T, m *manifest) {
	t.Helper()
	r := find[appsv1.StatefulSet](m, "redis")
	if r == nil {
		return
	}
	c := r.Spec.Template.Spec.Containers[0]
	cmd := append(slices.Clone(c.Command), c.Args...)
	if len(cmd) == 0 || cmd[0] != "redis-server" {
		t.Fatalf("redis: command %q, want redis-server with its settings", cmd)
	}
	settings := map[string]string{}
	for i := 1; i+1 < len(cmd); i += 2 {
		if !strings.HasPrefix(cmd[i], "--") {
			t.Fatalf("redis: argument %q of %q is not a --setting value pair", cmd[i], cmd)
		}
		settings[strings.TrimPrefix(cmd[i], "--")] = cmd[i+1]
	}
	for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "everysec"} {
		if settings[k] != want {
			t.Errorf("redis: --%s %q, want %q (in %q)", k, settings[k], want, cmd)
		}
	}
	if dir, ok := settings["dir"]; ok && dir != "/data" {
		t.Errorf("redis: --dir %q, want the data volume /data", dir)
	}
	data := ""
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == "/data" {
			data = vm.Name
		}
	}
	claimed := slices.ContainsFunc(r.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == data })
	ephemeral := slices.ContainsFunc(r.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == data && v.EmptyDir != nil })
	if data == "" || claimed == ephemeral {
		t.Errorf("redis data volume %q at /data: claimed=%v emptyDir=%v, want exactly one", data, claimed, ephemeral)
	}
}

// collectorConfig is the part of otel-collector.yaml the checks read.
type collectorConfig struct {
	Extensions map[string]map[string]any `json:"extensions"`
	Receivers  map[string]map[string]any `json:"receivers"`
	Processors map[string]map[string]any `json:"processors"`
	Connectors map[string]map[string]any `json:"connectors"`
	Exporters  map[string]map[string]any `json:"exporters"`
	Service    struct {
		Extensions []string `json:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `json:"receivers"`
			Processors []string `json:"processors"`
			Exporters  []string `json:"exporters"`
		} `json:"pipelines"`
		Telemetry map[string]any `json:"telemetry"`
	} `json:"service"`
}

// collectorComponents are the component types used here that the pinned collector image,
// Jaeger v2 (jaegertracing/jaeger), ships. A new type must be checked against that binary
// before it is added: the real-Jaeger test in services/devstack/e2e runs `jaeger validate` on
// otel-collector.yaml.
var collectorComponents = map[string][]string{
	"extensions": {"healthcheckv2", "pprof", "zpages"},
	"receivers":  {"otlp"},
	"processors": {"memory_limiter", "batch"},
	"connectors": {"spanmetrics"},
	"exporters":  {"otlp", "otlphttp", "prometheus", "debug"},
}

func readCollectorConfig(t *testing.T) (collectorConfig, []byte) {
	t.Helper()
	raw := readFile(t, repoPath("otel-collector.yaml"))
	var cfg collectorConfig
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}
	return cfg, raw
}

func TestCollectorConfig(t *testing.T) {
	cfg, _ := readCollectorConfig(t)
	sections := map[string]map[string]map[string]any{
		"extensions": cfg.Extensions, "receivers": cfg.Receivers, "processors": cfg.Processors,
		"connectors": cfg.Connectors, "exporters": cfg.Exporters,
	}
	for section, entries := range sections {
		for id := range entries {
			typ, _, _ := strings.Cut(id, "/")
			if !slices.Contains(collectorComponents[section], typ) {
				t.Errorf("%s.%s: type %q is not in the pinned collector image", section, id, typ)
			}
		}
	}
	grpc := lookup(map[string]any(cfg.Receivers["otlp"]), "protocols", "grpc", "endpoint")
	http := lookup(map[string]any(cfg.Receivers["otlp"]), "protocols", "http", "endpoint")
	if grpc != "0.0.0.0:4317" || http != "0.0.0.0:4318" {
		t.Errorf("otlp receiver endpoints grpc=%v http=%v, want 0.0.0.0:4317 and 0.0.0.0:4318", grpc, http)
	}
	if len(cfg.Service.Extensions) == 0 || !slices.Contains(cfg.Service.Extensions, "healthcheckv2") {
		t.Errorf("service.extensions %v must enable healthcheckv2", cfg.Service.Extensions)
	}
	for _, ext := range cfg.Service.Extensions {
		if _, ok := cfg.Extensions[ext]; !ok {
			t.Errorf("service.extensions uses undefined %s", ext)
		}
	}
	used := map[string]bool{}
	for name, p := range cfg.Service.Pipelines {
		if len(p.Processors) == 0 || p.Processors[0] != "memory_limiter" {
			t.Errorf("pipeline %s: memory_limiter must come first, got %v", name, p.Processors)
		}
		if !slices.Contains(p.Processors, "batch") {
			t.Errorf("pipeline %s: no batch processor", name)
		}
		for _, r := range p.Receivers {
			_, isReceiver := cfg.Receivers[r]
			_, isConnector := cfg.Connectors[r]
			if !isReceiver && !isConnector {
				t.Errorf("pipeline %s: undefined receiver %s", name, r)
			}
			used["r:"+r] = true
		}
		for _, pr := range p.Processors {
			if _, ok := cfg.Processors[pr]; !ok {
				t.Errorf("pipeline %s: undefined processor %s", name, pr)
			}
			used["p:"+pr] = true
		}
		for _, e := range p.Exporters {
			_, isExporter := cfg.Exporters[e]
			_, isConnector := cfg.Connectors[e]
			if !isExporter && !isConnector {
				t.Errorf("pipeline %s: undefined exporter %s", name, e)
			}
			used["e:"+e] = true
		}
	}
	for id := range cfg.Receivers {
		if !used["r:"+id] {
			t.Errorf("receiver %s is unused", id)
		}
	}
	for id := range cfg.Processors {
		if !used["p:"+id] {
			t.Errorf("processor %s is unused", id)
		}
	}
	for id := range cfg.Exporters {
		if !used["e:"+id] {
			t.Errorf("exporter %s is unused", id)
		}
	}
	for id := range cfg.Connectors {
		if !used["r:"+id] || !used["e:"+id] {
			t.Errorf("connector %s must be an exporter of one pipeline and a receiver of another", id)
		}
	}
	traces, metrics := cfg.Service.Pipelines["traces"], cfg.Service.Pipelines["metrics"]
	if !slices.Contains(traces.Exporters, "spanmetrics") || !slices.Contains(metrics.Receivers, "spanmetrics") {
		t.Errorf("spanmetrics must turn the traces pipeline into the metrics pipeline")
	}
	if !slices.Contains(metrics.Exporters, "prometheus") {
		t.Errorf("metrics must go to the prometheus exporter")
	}
	jaeger := ""
	for id, e := range cfg.Exporters {
		if strings.HasPrefix(id, "otlp/") && slices.Contains(traces.Exporters, id) {
			jaeger, _ = e["endpoint"].(string)
		}
	}
	if jaeger == "" {
		t.Errorf("traces must go to Jaeger over OTLP")
	}
}

// The collector's ConfigMap is otel-collector.yaml, byte for byte, and the collector reads it.
func TestCollectorConfigMapIsTheRootFile(t *testing.T) {
	m := devInfra(t)
	cfg, raw := readCollectorConfig(t)
	d := find[appsv1.Deployment](m, "otel-collector")
	if d == nil {
		t.Fatal("no otel-collector Deployment")
	}
	c := d.Spec.Template.Spec.Containers[0]
	configPath := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			configPath = v
		}
	}
	if configPath == "" {
		t.Fatalf("collector args %v name no --config", c.Args)
	}
	var cm *corev1.ConfigMap
	for _, vm := range c.VolumeMounts {
		if !strings.HasPrefix(configPath, vm.MountPath+"/") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm = find[corev1.ConfigMap](m, v.ConfigMap.Name)
				key := strings.TrimPrefix(configPath, vm.MountPath+"/")
				if cm == nil {
					t.Fatalf("ConfigMap %s not rendered", v.ConfigMap.Name)
				}
				if cm.Data[key] != string(raw) {
					t.Errorf("ConfigMap %s key %s differs from otel-collector.yaml", cm.Name, key)
				}
			}
		}
	}
	if cm == nil {
		t.Fatalf("%s is not mounted from a ConfigMap", configPath)
	}
	// The probes hit the healthcheckv2 extension's status; the Services expose the receivers.
	health := map[string]any(cfg.Extensions["healthcheckv2"])
	_, healthPort, err := net.SplitHostPort(fmt.Sprint(lookup(health, "http", "endpoint")))
	if err != nil {
		t.Fatalf("healthcheckv2 http.endpoint: %v", err)
	}
	healthPath := fmt.Sprint(lookup(health, "http", "status", "path"))
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		port, ok := containerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal)
		if !ok || strconv.Itoa(int(port.ContainerPort)) != healthPort || p.HTTPGet.Path != healthPath {
			t.Errorf("collector probe %s:%s does not hit healthcheckv2 %s on %s", p.HTTPGet.Path, p.HTTPGet.Port.String(), healthPath, healthPort)
		}
	}
	for _, port := range []int32{4317, 4318} {
		checkServiceURL(t, m, "collector OTLP", fmt.Sprintf("http://otel-collector:%d", port), "otel-collector")
	}
	// The Jaeger exporter's endpoint is the Jaeger Service's OTLP port.
	for id, e := range cfg.Exporters {
		if strings.HasPrefix(id, "otlp/") {
			checkServiceURL(t, m, "exporter "+id, "http://"+fmt.Sprint(e["endpoint"]), "jaeger")
		}
	}
}

func checkCollector(t *testing.T, m *manifest) {
	t.Helper()
	d := find[appsv1.Deployment](m, "otel-collector")
	if d == nil {
		return
	}
	c := d.Spec.Template.Spec.Containers[0]
	// Jaeger v2's binary, whose components otel-collector.yaml is checked against.
	if name, tag, _ := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); name != "jaeger" || !strings.HasPrefix(tag, "2.") {
		t.Errorf("collector image %s is not Jaeger v2", c.Image)
	}
	for _, p := range []int32{4317, 4318, 8889, 13133} {
		if _, ok := containerPort(c, "", p); !ok {
			t.Errorf("collector does not declare port %d", p)
		}
	}
}

func checkJaeger(t *testing.T, m *manifest) {
	t.Helper()
	d := find[appsv1.Deployment](m, "jaeger")
	if d == nil {
		return
	}
	c := d.Spec.Template.Spec.Containers[0]
	name, tag, _ := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":")
	if name != "jaeger" || !strings.HasPrefix(tag, "2.") {
		t.Errorf("Jaeger image %s is not Jaeger v2", c.Image)
	}
	if _, ok := containerPort(c, "", 16686); !ok {
		t.Errorf("Jaeger does not declare the UI port 16686")
	}
	if e, _ := envVar(c, "JAEGER_LISTEN_HOST"); e.Value != "0.0.0.0" {
		t.Errorf("Jaeger must listen on all interfaces (JAEGER_LISTEN_HOST=0.0.0.0)")
	}
	checkServiceURL(t, m, "Jaeger UI", "http://jaeger:16686", "jaeger")
}

// The chart's default and dev values point at the dev infrastructure: same hosts, ports,
// users, passwords and one database per service.
func TestChartMatchesDevInfra(t *testing.T) {
	infra := devInfra(t)
	pg := find[appsv1.StatefulSet](infra, "postgresql")
	if pg == nil {
		t.Fatal("no postgresql StatefulSet")
	}
	ref, _ := envVar(pg.Spec.Template.Spec.Containers[0], "ORDERS_PASSWORD")
	if ref.ValueFrom == nil || ref.ValueFrom.SecretKeyRef == nil {
		t.Fatal("postgresql: ORDERS_PASSWORD does not come from a Secret")
	}
	pgSecret := find[corev1.Secret](infra, ref.ValueFrom.SecretKeyRef.Name)
	if pgSecret == nil {
		t.Fatalf("no Secret %s", ref.ValueFrom.SecretKeyRef.Name)
	}
	for _, c := range []chartCase{chartCases[0], chartCases[1]} {
		t.Run(c.name, func(t *testing.T) {
			objects, _ := renderCase(t, c)
			both := objects.add(infra)
			for _, svc := range []string{"orders", "payments"} {
				s := find[corev1.Secret](objects, releaseName+"-"+svc)
				if s == nil {
					t.Fatalf("no Secret for %s", svc)
				}
				u, err := url.Parse(s.StringData["DATABASE_URL"])
				if err != nil {
					t.Fatal(err)
				}
				checkServiceURL(t, both, svc+" DATABASE_URL", "http://"+u.Host, "postgresql")
				password, _ := u.User.Password()
				want := pgSecret.StringData[strings.ToUpper(svc)+"_PASSWORD"]
				if want == "" {
					want = string(pgSecret.Data[strings.ToUpper(svc)+"_PASSWORD"])
				}
				if u.User.Username() != svc || password != want || u.Path != "/"+svc {
					t.Errorf("%s DATABASE_URL %s does not match the init script's role and database %s", svc, u.Redacted(), svc)
				}
				r, err := url.Parse(s.StringData["REDIS_URL"])
				if err != nil {
					t.Fatal(err)
				}
				checkServiceURL(t, both, svc+" REDIS_URL", "http://"+r.Host, "redis")
			}
			d := find[appsv1.Deployment](objects, releaseName+"-gateway")
			config := envFromConfig(t, objects, d.Spec.Template.Spec.Containers[0])
			checkServiceURL(t, both, "OTEL_EXPORTER_OTLP_ENDPOINT", config["OTEL_EXPORTER_OTLP_ENDPOINT"], "otel-collector")
			checkReferences(t, both, nil)
		})
	}
	script := string(readFile(t, repoPath("kustomize", "base", "postgresql-init.sh")))
	if !strings.Contains(script, "for svc in orders payments") || !strings.Contains(script, `CREATE DATABASE :"svc" OWNER :"svc"`) {
		t.Errorf("postgresql-init.sh no longer creates one database per service")
	}
}
