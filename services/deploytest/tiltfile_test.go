package deploytest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/blang/semver/v4"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	"sigs.k8s.io/yaml"
)

// The Tiltfile is evaluated with go.starlark.net and stubs of Tilt's built-ins that record
// what it asks for; the test then checks each request against the rendered objects and the
// files in the repository. A stub refuses arguments Tilt does not have.

type kustomizeCall struct {
	path  string
	flags []string
}

type helmCall struct {
	path, name, namespace, kubeVersion string
	values, set                        []string
}

type portForward struct {
	local, container int
	name, linkPath   string
}

type k8sResourceCall struct {
	workload, newName    string
	labels, resourceDeps []string
	portForwards         []portForward
}

type localResourceCall struct {
	name, cmd                  string
	deps, labels, resourceDeps []string
	env                        map[string]string
	manual, autoInit, parallel bool
}

type liveStep struct {
	kind, local, remote, cmd string
}

type dockerBuildCall struct {
	ref, context, dockerfile string
	platform                 string
	buildArgs                map[string]string
	only                     []string
	liveUpdate               []liveStep
}

type tiltRecord struct {
	contexts       []string
	kustomizes     []kustomizeCall
	helms          []helmCall
	yamls          []string
	k8sResources   []k8sResourceCall
	localResources []localResourceCall
	dockerBuilds   []dockerBuildCall
	watched        []string
	loads          []string
	versionSetting string
}

func stringList(v starlark.Value) ([]string, error) {
	switch x := v.(type) {
	case nil, starlark.NoneType:
		return nil, nil
	case starlark.String:
		return []string{string(x)}, nil
	case *starlark.List, starlark.Tuple:
		var out []string
		iter := starlark.Iterate(x)
		defer iter.Done()
		var item starlark.Value
		for iter.Next(&item) {
			s, ok := starlark.AsString(item)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got %s", item.Type())
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %s", v.Type())
}

func stringDict(v starlark.Value) (map[string]string, error) {
	out := map[string]string{}
	if v == nil || v == starlark.None {
		return out, nil
	}
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("want a dict, got %s", v.Type())
	}
	for _, item := range d.Items() {
		k, ok1 := starlark.AsString(item[0])
		val, ok2 := starlark.AsString(item[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("want a dict of strings")
		}
		out[k] = val
	}
	return out, nil
}

// tiltFloor is the oldest Tilt the Tiltfile may admit: before 0.36.0, helm() runs
// `helm version --client`, which Helm 4 refuses.
var tiltFloor = semver.MustParse("0.36.0")

// checkTiltConstraint is what the version_settings stub asks of a constraint: Tilt parses it
// with blang/semver's ParseRange, and it must refuse every Tilt older than tiltFloor. It
// returns the oldest release the constraint admits (of 0.x.y with x, y < 100).
func checkTiltConstraint(constraint string) (semver.Version, error) {
	if constraint == "" {
		return semver.Version{}, fmt.Errorf("version_settings: no constraint, so any Tilt runs the Tiltfile; want >=%s", tiltFloor)
	}
	admits, err := semver.ParseRange(constraint)
	if err != nil {
		return semver.Version{}, fmt.Errorf("version_settings: constraint %q: %v", constraint, err)
	}
	var oldest *semver.Version
	for minor := uint64(0); minor < 100; minor++ {
		for patch := uint64(0); patch < 100; patch++ {
			v := semver.Version{Major: 0, Minor: minor, Patch: patch}
			if !admits(v) {
				continue
			}
			if v.LT(tiltFloor) {
				return v, fmt.Errorf("version_settings: constraint %q admits Tilt %s; want none older than %s (helm() and Helm 4)", constraint, v, tiltFloor)
			}
			if oldest == nil {
				oldest = &v
			}
		}
	}
	if oldest == nil {
		return semver.Version{}, fmt.Errorf("version_settings: constraint %q admits no Tilt 0.x", constraint)
	}
	return *oldest, nil
}

// tiltEnv is the world the stubbed Tiltfile sees.
type tiltEnv struct {
	context string            // what k8s_context() answers
	env     map[string]string // os.getenv
	// node is what `kubectl get nodes` prints: "<architecture> <kubeletVersion>", or "" for
	// an unreachable cluster.
	node string
	// source replaces the Tiltfile's text, if set.
	source []byte
}

// defaultNode is the kind node the stub reports: the host's architecture.
var defaultNode = runtime.GOARCH + " v1.34.0"

// evalTiltfile runs the Tiltfile with Tilt's built-ins stubbed; kubeContext is what
// k8s_context() answers.
func evalTiltfile(t *testing.T, kubeContext string, env map[string]string) (*tiltRecord, error) {
	t.Helper()
	return evalTiltfileIn(t, tiltEnv{context: kubeContext, env: env, node: defaultNode})
}

func evalTiltfileIn(t *testing.T, te tiltEnv) (*tiltRecord, error) {
	t.Helper()
	kubeContext, env := te.context, te.env
	rec := &tiltRecord{}
	blobs := 0
	blob := func(kind string) starlark.Value {
		blobs++
		return starlark.String(fmt.Sprintf("<%s blob %d>", kind, blobs))
	}
	builtin := func(name string, fn func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return fn(args, kwargs)
		})
	}
	manual := starlark.String("TRIGGER_MODE_MANUAL")
	auto := starlark.String("TRIGGER_MODE_AUTO")

	predeclared := starlark.StringDict{
		"os": &starlarkstruct.Module{Name: "os", Members: starlark.StringDict{
			"getenv": builtin("os.getenv", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				var key string
				var def starlark.Value = starlark.None
				if err := starlark.UnpackArgs("os.getenv", args, kwargs, "key", &key, "default?", &def); err != nil {
					return nil, err
				}
				if v, ok := env[key]; ok {
					return starlark.String(v), nil
				}
				return def, nil
			}),
		}},
		"TRIGGER_MODE_MANUAL": manual,
		"TRIGGER_MODE_AUTO":   auto,
		"version_settings": builtin("version_settings", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var check bool
			var constraint string
			if err := starlark.UnpackArgs("version_settings", args, kwargs, "check_updates?", &check, "constraint?", &constraint); err != nil {
				return nil, err
			}
			rec.versionSetting = constraint
			_, err := checkTiltConstraint(constraint)
			return starlark.None, err
		}),
		"allow_k8s_contexts": builtin("allow_k8s_contexts", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackArgs("allow_k8s_contexts", args, kwargs, "contexts", &v); err != nil {
				return nil, err
			}
			list, err := stringList(v)
			rec.contexts = append(rec.contexts, list...)
			return starlark.None, err
		}),
		"k8s_context": builtin("k8s_context", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(kubeContext), starlark.UnpackArgs("k8s_context", args, kwargs)
		}),
		"kustomize": builtin("kustomize", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var path, bin string
			var flags starlark.Value
			if err := starlark.UnpackArgs("kustomize", args, kwargs, "pathToDir", &path, "kustomize_bin?", &bin, "flags?", &flags); err != nil {
				return nil, err
			}
			list, err := stringList(flags)
			rec.kustomizes = append(rec.kustomizes, kustomizeCall{path, list})
			return blob("kustomize"), err
		}),
		"helm": builtin("helm", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var path, name, ns, kubeVersion string
			var vals, set starlark.Value
			var skipCRDs bool
			if err := starlark.UnpackArgs("helm", args, kwargs, "paths", &path, "name?", &name, "namespace?", &ns,
				"values?", &vals, "set?", &set, "kube_version?", &kubeVersion, "skip_crds?", &skipCRDs); err != nil {
				return nil, err
			}
			v, err := stringList(vals)
			if err != nil {
				return nil, err
			}
			s, err := stringList(set)
			rec.helms = append(rec.helms, helmCall{path, name, ns, kubeVersion, v, s})
			return blob("helm"), err
		}),
		"k8s_yaml": builtin("k8s_yaml", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			var dup bool
			if err := starlark.UnpackArgs("k8s_yaml", args, kwargs, "yaml", &v, "allow_duplicates?", &dup); err != nil {
				return nil, err
			}
			list, err := stringList(v)
			rec.yamls = append(rec.yamls, list...)
			return starlark.None, err
		}),
		"watch_file": builtin("watch_file", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var path string
			err := starlark.UnpackArgs("watch_file", args, kwargs, "file_path", &path)
			rec.watched = append(rec.watched, path)
			return starlark.None, err
		}),
		"local": builtin("local", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var cmd, cmdBat, dir string
			var quiet, echoOff bool
			var env, stdin starlark.Value
			if err := starlark.UnpackArgs("local", args, kwargs, "command", &cmd, "quiet?", &quiet, "command_bat?", &cmdBat,
				"echo_off?", &echoOff, "env?", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
				return nil, err
			}
			if cmd == "go env GOARCH" {
				return starlark.String(runtime.GOARCH + "\n"), nil
			}
			// The cluster's node, from the kind cluster only; a failure must not fail the Tiltfile.
			if strings.HasPrefix(cmd, "kubectl --context "+kubeContext+" get nodes ") &&
				strings.Contains(cmd, "{.items[0].status.nodeInfo.architecture} {.items[0].status.nodeInfo.kubeletVersion}") &&
				strings.HasSuffix(cmd, "|| true") {
				return starlark.String(te.node), nil
			}
			return nil, fmt.Errorf("local(%q): the stub knows only `go env GOARCH` and the kind node's architecture and version; teach it before the Tiltfile runs more at load time", cmd)
		}),
		"port_forward": builtin("port_forward", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var local, container int
			var name, linkPath, host string
			if err := starlark.UnpackArgs("port_forward", args, kwargs, "local_port", &local, "container_port?", &container,
				"name?", &name, "link_path?", &linkPath, "host?", &host); err != nil {
				return nil, err
			}
			return starlarkstruct.FromStringDict(starlark.String("port_forward"), starlark.StringDict{
				"local": starlark.MakeInt(local), "container": starlark.MakeInt(container),
				"name": starlark.String(name), "link_path": starlark.String(linkPath),
			}), nil
		}),
		"k8s_resource": builtin("k8s_resource", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var workload, newName, podReadiness, discovery string
			var pfs, extraSelectors, triggerMode, deps, objects, links, labels starlark.Value
			autoInit := true
			if err := starlark.UnpackArgs("k8s_resource", args, kwargs, "workload?", &workload, "new_name?", &newName,
				"port_forwards?", &pfs, "extra_pod_selectors?", &extraSelectors, "trigger_mode?", &triggerMode,
				"resource_deps?", &deps, "objects?", &objects, "auto_init?", &autoInit, "pod_readiness?", &podReadiness,
				"links?", &links, "labels?", &labels, "discovery_strategy?", &discovery); err != nil {
				return nil, err
			}
			call := k8sResourceCall{workload: workload, newName: newName}
			var err error
			if call.labels, err = stringList(labels); err != nil {
				return nil, err
			}
			if call.resourceDeps, err = stringList(deps); err != nil {
				return nil, err
			}
			if pfs != nil {
				list, ok := pfs.(*starlark.List)
				if !ok {
					return nil, fmt.Errorf("k8s_resource: port_forwards must be a list of port_forward()")
				}
				for i := 0; i < list.Len(); i++ {
					s, ok := list.Index(i).(*starlarkstruct.Struct)
					if !ok {
						return nil, fmt.Errorf("k8s_resource: port_forwards[%d] is not a port_forward()", i)
					}
					var pf portForward
					for _, f := range []string{"local", "container", "name", "link_path"} {
						v, _ := s.Attr(f)
						switch f {
						case "local":
							pf.local, _ = starlark.AsInt32(v)
						case "container":
							pf.container, _ = starlark.AsInt32(v)
						case "name":
							pf.name, _ = starlark.AsString(v)
						case "link_path":
							pf.linkPath, _ = starlark.AsString(v)
						}
					}
					call.portForwards = append(call.portForwards, pf)
				}
			}
			rec.k8sResources = append(rec.k8sResources, call)
			return starlark.None, nil
		}),
		"local_resource": builtin("local_resource", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name, serveCmd, cmdBat, serveCmdBat, dir, serveDir string
			var cmd, deps, triggerMode, resourceDeps, ignore, links, tags, env, serveEnv, readiness, labels starlark.Value
			var allowParallel bool
			autoInit := true
			if err := starlark.UnpackArgs("local_resource", args, kwargs, "name", &name, "cmd?", &cmd, "deps?", &deps,
				"trigger_mode?", &triggerMode, "resource_deps?", &resourceDeps, "ignore?", &ignore, "auto_init?", &autoInit,
				"serve_cmd?", &serveCmd, "cmd_bat?", &cmdBat, "serve_cmd_bat?", &serveCmdBat, "allow_parallel?", &allowParallel,
				"links?", &links, "tags?", &tags, "env?", &env, "serve_env?", &serveEnv, "readiness_probe?", &readiness,
				"dir?", &dir, "serve_dir?", &serveDir, "labels?", &labels); err != nil {
				return nil, err
			}
			call := localResourceCall{name: name, autoInit: autoInit, manual: triggerMode == manual, parallel: allowParallel}
			cmdList, err := stringList(cmd)
			if err != nil {
				return nil, err
			}
			call.cmd = strings.Join(cmdList, " ")
			if call.deps, err = stringList(deps); err != nil {
				return nil, err
			}
			if call.labels, err = stringList(labels); err != nil {
				return nil, err
			}
			if call.resourceDeps, err = stringList(resourceDeps); err != nil {
				return nil, err
			}
			if call.env, err = stringDict(env); err != nil {
				return nil, err
			}
			rec.localResources = append(rec.localResources, call)
			return starlark.None, nil
		}),
		"sync": builtin("sync", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var local, remote string
			if err := starlark.UnpackArgs("sync", args, kwargs, "local_path", &local, "remote_path", &remote); err != nil {
				return nil, err
			}
			return starlarkstruct.FromStringDict(starlark.String("sync"), starlark.StringDict{
				"local": starlark.String(local), "remote": starlark.String(remote),
			}), nil
		}),
		"run": builtin("run", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var cmd string
			var trigger starlark.Value
			var echoOff bool
			if err := starlark.UnpackArgs("run", args, kwargs, "cmd", &cmd, "trigger?", &trigger, "echo_off?", &echoOff); err != nil {
				return nil, err
			}
			return starlarkstruct.FromStringDict(starlark.String("run"), starlark.StringDict{"cmd": starlark.String(cmd)}), nil
		}),
		"docker_build": builtin("docker_build", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var ref, context, dockerfile, dockerfileContents, target, ssh, network, secret, extraTag, platform string
			var buildArgs, liveUpdate, ignore, only, entrypoint, containerArgs, cacheFrom, extraHosts starlark.Value
			var matchInEnv, pull bool
			dockerfile = "Dockerfile"
			if err := starlark.UnpackArgs("docker_build", args, kwargs, "ref", &ref, "context", &context,
				"build_args?", &buildArgs, "dockerfile?", &dockerfile, "dockerfile_contents?", &dockerfileContents,
				"live_update?", &liveUpdate, "match_in_env_vars?", &matchInEnv, "ignore?", &ignore, "only?", &only,
				"entrypoint?", &entrypoint, "target?", &target, "ssh?", &ssh, "network?", &network, "secret?", &secret,
				"extra_tag?", &extraTag, "container_args?", &containerArgs, "cache_from?", &cacheFrom, "pull?", &pull,
				"platform?", &platform, "extra_hosts?", &extraHosts); err != nil {
				return nil, err
			}
			call := dockerBuildCall{ref: ref, context: context, dockerfile: dockerfile, platform: platform}
			var err error
			if call.buildArgs, err = stringDict(buildArgs); err != nil {
				return nil, err
			}
			if call.only, err = stringList(only); err != nil {
				return nil, err
			}
			if liveUpdate != nil {
				list, ok := liveUpdate.(*starlark.List)
				if !ok {
					return nil, fmt.Errorf("docker_build: live_update must be a list")
				}
				for i := 0; i < list.Len(); i++ {
					s, ok := list.Index(i).(*starlarkstruct.Struct)
					if !ok {
						return nil, fmt.Errorf("docker_build: live_update[%d] is not a step", i)
					}
					step := liveStep{kind: s.Constructor().(starlark.String).GoString()}
					for _, f := range []string{"local", "remote", "cmd"} {
						if v, err := s.Attr(f); err == nil {
							str, _ := starlark.AsString(v)
							switch f {
							case "local":
								step.local = str
							case "remote":
								step.remote = str
							case "cmd":
								step.cmd = str
							}
						}
					}
					call.liveUpdate = append(call.liveUpdate, step)
				}
			}
			rec.dockerBuilds = append(rec.dockerBuilds, call)
			return starlark.None, nil
		}),
	}

	opts := &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
	cache := map[string]starlark.StringDict{}
	var load func(thread *starlark.Thread, module string) (starlark.StringDict, error)
	load = func(thread *starlark.Thread, module string) (starlark.StringDict, error) {
		rec.loads = append(rec.loads, module)
		if strings.Contains(module, "://") {
			return nil, fmt.Errorf("load(%q): tilt up must not need the network (no ext:// or URLs)", module)
		}
		path := filepath.Clean(filepath.Join(repoRoot, module))
		if !strings.HasPrefix(path, repoRoot+string(os.PathSeparator)) {
			return nil, fmt.Errorf("load(%q) leaves the repository", module)
		}
		if g, ok := cache[path]; ok {
			return g, nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		child := &starlark.Thread{Name: module, Load: load}
		g, err := starlark.ExecFileOptions(opts, child, module, src, predeclared)
		cache[path] = g
		return g, err
	}
	thread := &starlark.Thread{Name: "Tiltfile", Load: load}
	src := te.source
	if src == nil {
		src = readFile(t, repoPath("Tiltfile"))
	}
	_, err := starlark.ExecFileOptions(opts, thread, "Tiltfile", src, predeclared)
	if err != nil {
		if ee, ok := err.(*starlark.EvalError); ok {
			return rec, fmt.Errorf("%s", ee.Backtrace())
		}
		return rec, err
	}
	return rec, nil
}

// ctlptlContext is the kube context of the cluster tilt/ctlptl.yaml creates.
func ctlptlContext(t *testing.T) string {
	t.Helper()
	for _, doc := range strings.Split(string(readFile(t, repoPath("tilt", "ctlptl.yaml"))), "\n---") {
		var obj struct {
			Kind    string `json:"kind"`
			Name    string `json:"name"`
			Product string `json:"product"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("tilt/ctlptl.yaml: %v", err)
		}
		if obj.Kind == "Cluster" {
			if obj.Product != "kind" {
				t.Errorf("ctlptl cluster product %q, want kind", obj.Product)
			}
			return obj.Name
		}
	}
	t.Fatal("tilt/ctlptl.yaml defines no Cluster")
	return ""
}

func TestTiltfileRefusesOtherContexts(t *testing.T) {
	for _, ctx := range []string{"production", "kind-other", "docker-desktop"} {
		if _, err := evalTiltfile(t, ctx, nil); err == nil {
			t.Errorf("the Tiltfile deploys to context %q", ctx)
		}
	}
}

func TestTiltfile(t *testing.T) {
	kubeContext := ctlptlContext(t)
	rec, err := evalTiltfile(t, kubeContext, nil)
	if err != nil {
		t.Fatalf("Tiltfile: %v", err)
	}
	// Every image is overridable: the live-update base image from the environment.
	mirrored, err := evalTiltfile(t, kubeContext, map[string]string{"SHOP_LIVE_BASE_IMAGE": "mirror.example/busybox:1.37.0"})
	if err != nil {
		t.Fatalf("Tiltfile with SHOP_LIVE_BASE_IMAGE: %v", err)
	}
	for _, b := range mirrored.dockerBuilds {
		if b.buildArgs["BASE_IMAGE"] != "mirror.example/busybox:1.37.0" {
			t.Errorf("docker_build(%s) ignores SHOP_LIVE_BASE_IMAGE: build args %v", b.ref, b.buildArgs)
		}
	}
	for _, b := range rec.dockerBuilds {
		df := parseDockerfile(t, repoPath(b.dockerfile))
		for _, st := range df.stages {
			if from := df.expand(st.from, b.buildArgs); from != "scratch" {
				if reason := imageUnpinned(from); reason != "" {
					t.Errorf("docker_build(%s): FROM %s %s", b.ref, from, reason)
				}
			}
		}
	}
	if !slices.Contains(rec.contexts, kubeContext) || len(rec.contexts) != 1 {
		t.Errorf("allow_k8s_contexts %v, want exactly the ctlptl cluster %s", rec.contexts, kubeContext)
	}
	for _, f := range append([]string{"Tiltfile"}, rec.loads...) {
		if strings.Contains(string(readFile(t, repoPath(f))), "ext://") {
			t.Errorf("%s mentions ext://: tilt up must not need GitHub", f)
		}
	}

	// What gets deployed: the kustomize infrastructure and the chart, as Tilt renders them.
	rendered := &manifest{}
	if len(rec.kustomizes) == 0 || len(rec.helms) == 0 {
		t.Fatalf("the Tiltfile deploys kustomize %d times and helm %d times, want both", len(rec.kustomizes), len(rec.helms))
	}
	for _, k := range rec.kustomizes {
		if !exists(repoPath(k.path, "kustomization.yaml")) {
			t.Fatalf("kustomize(%q): no kustomization.yaml", k.path)
		}
		if !slices.Contains(k.flags, "--load-restrictor=LoadRestrictionsNone") {
			t.Errorf("kustomize(%q) needs --load-restrictor=LoadRestrictionsNone for otel-collector.yaml", k.path)
		}
		m, err := kustomizeBuild(repoPath(k.path))
		if err != nil {
			t.Fatalf("kustomize(%q): %v", k.path, err)
		}
		rendered = rendered.add(m)
	}
	for _, h := range rec.helms {
		if !exists(repoPath(h.path, "Chart.yaml")) {
			t.Fatalf("helm(%q): not a chart", h.path)
		}
		if h.name != releaseName || h.namespace != namespace {
			t.Errorf("helm release %s/%s, want %s/%s", h.namespace, h.name, namespace, releaseName)
		}
		for _, v := range h.values {
			if !exists(repoPath(v)) {
				t.Errorf("helm values file %s does not exist", v)
			}
		}
		// Tilt's helm() leaves out templates/tests: the release objects only.
		// The chart requires a Kubernetes version; the Tiltfile passes the node's (see below).
		objects, _ := renderCase(t, chartCase{name: "tilt", valueFiles: h.values, set: h.set, kubeVersion: h.kubeVersion})
		rendered = rendered.add(objects)
	}
	if len(rec.yamls) != len(rec.kustomizes)+len(rec.helms) {
		t.Errorf("k8s_yaml got %d blobs, want each kustomize() and helm() result once", len(rec.yamls))
	}
	for _, w := range []string{"otel-collector.yaml"} {
		if !slices.Contains(rec.watched, w) {
			t.Errorf("the Tiltfile does not watch %s (outside the kustomization, so Tilt would miss edits)", w)
		}
	}

	workloads := map[string]workload{}
	for _, w := range rendered.workloads() {
		workloads[w.name] = w
	}

	// Local resources: commands and watched paths.
	resources := map[string]bool{}
	produced := map[string]string{} // file -> local_resource that builds it
	var manualTests bool
	for _, lr := range rec.localResources {
		if resources[lr.name] {
			t.Errorf("resource %s defined twice", lr.name)
		}
		resources[lr.name] = true
		if len(lr.labels) == 0 {
			t.Errorf("local_resource %s has no labels", lr.name)
		}
		for _, d := range lr.deps {
			if !exists(repoPath(d)) {
				t.Errorf("local_resource %s watches %s, which does not exist", lr.name, d)
			}
		}
		c, ok, err := parseTiltCompile(lr.name, lr.cmd)
		if err != nil {
			t.Error(err)
		}
		if ok {
			produced[c.out] = lr.name
			// The stub's kind node runs on the host's architecture (defaultNode).
			for _, e := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH} {
				if !slices.Contains(c.env, e) {
					t.Errorf("local_resource %s must compile with CGO_ENABLED=0 GOOS=linux and the node's GOARCH: %s", lr.name, lr.cmd)
				}
			}
			if !exists(repoPath(c.pkg)) {
				t.Errorf("local_resource %s builds %s, which does not exist", lr.name, c.pkg)
			}
			if !lr.parallel {
				t.Errorf("local_resource %s: allow_parallel=False, so the services compile one after another", lr.name)
			}
			// The dev binary is built like the production one.
			if df := repoPath(c.pkg, "Dockerfile"); exists(df) {
				if want := parseDockerfile(t, df).goBuild(t).flags; !slices.Equal(c.flags, want) {
					t.Errorf("local_resource %s builds with %v, the Dockerfile with %v", lr.name, c.flags, want)
				}
			}
		}
		if strings.Contains(lr.cmd, "go test") && lr.manual && !lr.autoInit {
			manualTests = true
		}
	}
	if !manualTests {
		t.Errorf("no manual local_resource runs the tests")
	}
	if oldest, err := checkTiltConstraint(rec.versionSetting); err != nil {
		t.Error(err)
	} else if floor := readmeFloor(t, "Tilt"); !floor.Equals(oldest) {
		t.Errorf("README's install table asks for Tilt ≥ %s, version_settings admits %s and later", floor, oldest)
	}

	// Images: each build has a real context and Dockerfile and feeds a rendered workload.
	built := map[string]dockerBuildCall{}
	for _, b := range rec.dockerBuilds {
		built[b.ref] = b
		if st, err := os.Stat(repoPath(b.context)); err != nil || !st.IsDir() {
			t.Errorf("docker_build(%s): context %s is not a directory", b.ref, b.context)
		}
		dockerfile := repoPath(b.context, b.dockerfile)
		if !exists(dockerfile) {
			dockerfile = repoPath(b.dockerfile)
		}
		if !exists(dockerfile) {
			t.Errorf("docker_build(%s): Dockerfile %s does not exist", b.ref, b.dockerfile)
			continue
		}
		df := parseDockerfile(t, dockerfile)
		for arg := range b.buildArgs {
			if _, ok := df.args[arg]; !ok {
				t.Errorf("docker_build(%s): build arg %s is not an ARG of %s", b.ref, arg, b.dockerfile)
			}
		}
		for _, src := range df.copySources(b.buildArgs) {
			if !exists(repoPath(b.context, src)) && produced[filepath.Join(b.context, src)] == "" && produced[src] == "" {
				t.Errorf("docker_build(%s): %s copies %s, which neither exists nor is compiled by a local_resource", b.ref, b.dockerfile, src)
			}
			if len(b.only) > 0 && !slices.ContainsFunc(b.only, func(o string) bool { return src == o || strings.HasPrefix(src, strings.TrimSuffix(o, "/")+"/") }) {
				t.Errorf("docker_build(%s): %s copies %s, which only= leaves out of the context", b.ref, b.dockerfile, src)
			}
		}
		for _, o := range b.only {
			if !exists(repoPath(b.context, o)) && produced[o] == "" {
				t.Errorf("docker_build(%s): only= %s neither exists nor is compiled by a local_resource", b.ref, o)
			}
		}
		var users []workload
		for _, w := range rendered.workloads() {
			for _, c := range w.spec.Containers {
				if imageName(c.Image) == b.ref {
					users = append(users, w)
				}
			}
		}
		if len(users) == 0 {
			t.Errorf("docker_build(%s): no rendered workload uses the image", b.ref)
		}
		checkLiveUpdate(t, b, users, produced)
	}
	// ...and every shop image is built by Tilt (there is no registry to pull it from).
	for _, w := range rendered.workloads() {
		for _, c := range w.spec.Containers {
			if strings.HasPrefix(imageName(c.Image), "shop-") {
				if _, ok := built[imageName(c.Image)]; !ok {
					t.Errorf("%s uses %s, which the Tiltfile does not build", w, c.Image)
				}
			}
		}
	}

	// k8s resources: each names a rendered workload; forwards hit declared ports.
	names := map[string]string{} // resource name -> workload
	for _, r := range rec.k8sResources {
		w, ok := workloads[r.workload]
		if !ok {
			t.Errorf("k8s_resource(%q) names no rendered workload (have %v)", r.workload, keys(workloads))
			continue
		}
		name := r.workload
		if r.newName != "" {
			name = r.newName
		}
		if resources[name] {
			t.Errorf("resource %s defined twice", name)
		}
		resources[name] = true
		names[name] = r.workload
		if len(r.labels) == 0 {
			t.Errorf("k8s_resource(%q) has no labels", r.workload)
		}
		for _, pf := range r.portForwards {
			port := pf.container
			if port == 0 {
				port = pf.local
			}
			if _, ok := podPort(w.spec, "", int32(port)); !ok {
				t.Errorf("k8s_resource(%q): port forward %d -> %d, but the pods declare no port %d", r.workload, pf.local, port, port)
			}
		}
	}
	for name := range workloads {
		found := false
		for _, r := range rec.k8sResources {
			found = found || r.workload == name
		}
		if !found {
			t.Errorf("workload %s has no k8s_resource (labels, dependencies)", name)
		}
	}
	for _, r := range rec.k8sResources {
		for _, d := range r.resourceDeps {
			if !resources[d] {
				t.Errorf("k8s_resource(%q) depends on unknown resource %q", r.workload, d)
			}
		}
	}
	// The services wait for their stores and their binary.
	deps := func(resource string) []string {
		for _, r := range rec.k8sResources {
			if r.newName == resource || r.workload == resource {
				return r.resourceDeps
			}
		}
		t.Errorf("no resource %s", resource)
		return nil
	}
	for _, svc := range []string{"orders", "payments"} {
		for _, need := range []string{"postgresql", "redis"} {
			if !slices.Contains(deps(svc), need) {
				t.Errorf("%s does not wait for %s", svc, need)
			}
		}
	}
	for _, b := range rec.dockerBuilds {
		for _, src := range parseDockerfile(t, repoPath(b.dockerfile)).copySources(b.buildArgs) {
			if lr := produced[src]; lr != "" {
				for name, wl := range names {
					for _, c := range workloads[wl].spec.Containers {
						if imageName(c.Image) == b.ref && !slices.Contains(deps(name), lr) {
							t.Errorf("%s does not wait for %s, which compiles its binary", name, lr)
						}
					}
				}
			}
		}
	}
	checkForwards(t, rec)
	checkTestsResource(t, rec)
}

// forwardTo is the local port of the resource's forward to the container port, or 0.
func forwardTo(rec *tiltRecord, resource string, container int) int {
	for _, r := range rec.k8sResources {
		if r.newName != resource && r.workload != resource {
			continue
		}
		for _, pf := range r.portForwards {
			if pf.container == container || (pf.container == 0 && pf.local == container) {
				return pf.local
			}
		}
	}
	return 0
}

// reservedPorts are local ports the forwards must leave alone: `make run` (gateway, payments,
// orders) and a local PostgreSQL and Redis, which `make test` uses.
var reservedPorts = map[int]string{8000: "make run's gateway", 8001: "make run's payments", 8002: "make run's orders",
	5432: "a local PostgreSQL", 6379: "a local Redis"}

// checkForwards: the URLs the README promises are forwarded, to local ports `make run` and the
// local stores do not use.
func checkForwards(t *testing.T, rec *tiltRecord) {
	t.Helper()
	used := map[int]string{}
	for _, r := range rec.k8sResources {
		for _, pf := range r.portForwards {
			if what, ok := reservedPorts[pf.local]; ok {
				t.Errorf("k8s_resource(%q) forwards local port %d, which %s uses", r.workload, pf.local, what)
			}
			if other, ok := used[pf.local]; ok {
				t.Errorf("local port %d is forwarded twice (%s, %s)", pf.local, other, r.workload)
			}
			used[pf.local] = r.workload
		}
	}
	readme := string(readFile(t, repoPath("README.md")))
	for _, want := range []struct {
		resource       string
		container      int
		path, readmeAs string
	}{{"gateway", 8000, "/docs", "the API docs"}, {"gateway", 8000, "/openapi.json", "the OpenAPI"}, {"jaeger", 16686, "", "the Jaeger UI"}} {
		local := forwardTo(rec, want.resource, want.container)
		if local == 0 {
			t.Errorf("no port forward to %s:%d (%s)", want.resource, want.container, want.readmeAs)
			continue
		}
		link := fmt.Sprintf("http://localhost:%d%s", local, want.path)
		if !strings.Contains(readme, "| "+link+" |") {
			t.Errorf("README's table of Tilt URLs does not list %s (%s)", link, want.readmeAs)
		}
	}
}

// checkTestsResource: the `tests` resource runs the Makefile's test packages against the
// PostgreSQL and Redis Tilt started (through their forwards), without -race, which needs a C
// compiler.
func checkTestsResource(t *testing.T, rec *tiltRecord) {
	t.Helper()
	var tests *localResourceCall
	for i, lr := range rec.localResources {
		if lr.name == "tests" {
			tests = &rec.localResources[i]
		}
	}
	if tests == nil {
		t.Fatal("no local_resource tests")
	}
	fields := shellFields(tests.cmd)
	if len(fields) < 2 || fields[0] != "go" || fields[1] != "test" {
		t.Errorf("tests runs %q, want go test (make test runs with -race and the local stores)", tests.cmd)
	}
	if slices.Contains(fields, "-race") {
		t.Errorf("tests runs %q: -race needs cgo and a C compiler", tests.cmd)
	}
	makefile := string(readFile(t, repoPath("Makefile")))
	m := regexp.MustCompile(`(?m)^MODULES\s*:=\s*(.+)$`).FindStringSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile has no MODULES")
	}
	for _, mod := range strings.Fields(m[1]) {
		if !slices.Contains(fields, "./services/"+mod+"/...") {
			t.Errorf("tests does not test ./services/%s/... (in the Makefile's MODULES): %s", mod, tests.cmd)
		}
	}
	for _, store := range []struct {
		resource, variable, scheme string
		port                       int
	}{{"postgresql", "TEST_DATABASE_URL", "postgres", 5432}, {"redis", "TEST_REDIS_URL", "redis", 6379}} {
		local := forwardTo(rec, store.resource, store.port)
		if local == 0 {
			t.Errorf("%s is not forwarded, so tests cannot reach it", store.resource)
			continue
		}
		u, err := url.Parse(tests.env[store.variable])
		if err != nil || u.Scheme != store.scheme || u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(local) {
			t.Errorf("tests: %s=%q, want a %s:// URL at 127.0.0.1:%d, the forward to %s", store.variable, tests.env[store.variable], store.scheme, local, store.resource)
		}
		if !slices.Contains(tests.resourceDeps, store.resource) {
			t.Errorf("tests does not wait for %s", store.resource)
		}
	}
}

// readmeFloor is the version the README's install table asks for: "| [tool](…) ≥ X.Y |".
func readmeFloor(t *testing.T, tool string) semver.Version {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\| \[` + regexp.QuoteMeta(tool) + `\]\([^)]*\) ≥ (\d+\.\d+(?:\.\d+)?)`)
	m := re.FindStringSubmatch(string(readFile(t, repoPath("README.md"))))
	if m == nil {
		t.Fatalf("README's install table has no row \"| [%s](…) ≥ version\"", tool)
	}
	v, err := semver.ParseTolerant(m[1])
	if err != nil {
		t.Fatalf("README: %s ≥ %s: %v", tool, m[1], err)
	}
	return v
}

// The README's floors: Tilt's matches version_settings (TestTiltfile); kind before 0.28 runs a
// network policy implementation that blocks the kubelet's probes under a default-deny policy
// (kind#3875); Helm before 3.15 renders for a Kubernetes older than the chart's kubeVersion
// when no --kube-version is given.
func TestReadmeVersionFloors(t *testing.T) {
	for tool, floor := range map[string]string{"Tilt": "0.36.0", "kind": "0.28.0", "Helm": "3.15.0"} {
		if got := readmeFloor(t, tool); got.LT(semver.MustParse(floor)) {
			t.Errorf("README asks for %s ≥ %s, want ≥ %s", tool, got, floor)
		}
	}
}

// The version_settings stub refuses a Tiltfile that admits a Tilt older than tiltFloor.
func TestTiltfileVersionFloor(t *testing.T) {
	src := string(readFile(t, repoPath("Tiltfile")))
	re := regexp.MustCompile(`version_settings\(constraint = "[^"]*"\)`)
	if !re.MatchString(src) {
		t.Fatal("the Tiltfile has no version_settings(constraint = ...)")
	}
	for _, c := range []string{">=0.33.0", ">=0.35.99", ">0.1.0", "<1.0.0", ">=0.36.0 || <0.20.0", ""} {
		mod := re.ReplaceAllString(src, fmt.Sprintf("version_settings(constraint = %q)", c))
		if _, err := evalTiltfileIn(t, tiltEnv{context: ctlptlContext(t), node: defaultNode, source: []byte(mod)}); err == nil {
			t.Errorf("a Tiltfile with constraint %q passes", c)
		}
	}
	for _, c := range []string{">=0.36.0", ">=0.36.1 <1.0.0"} {
		mod := re.ReplaceAllString(src, fmt.Sprintf("version_settings(constraint = %q)", c))
		if _, err := evalTiltfileIn(t, tiltEnv{context: ctlptlContext(t), node: defaultNode, source: []byte(mod)}); err != nil {
			t.Errorf("constraint %q: %v", c, err)
		}
	}
}

// The compiles target the cluster node's architecture and helm() renders for its Kubernetes
// version; an unreadable node falls back to the host's GOARCH and Helm's default version.
func TestTiltfileFollowsTheNode(t *testing.T) {
	kubeContext := ctlptlContext(t)
	for _, tc := range []struct {
		node, goarch, kubeVersion string
	}{
		{"arm64 v1.33.1", "arm64", "v1.33.1"},
		{"amd64 v1.34.0", "amd64", "v1.34.0"},
		{"", runtime.GOARCH, ""},
	} {
		rec, err := evalTiltfileIn(t, tiltEnv{context: kubeContext, node: tc.node})
		if err != nil {
			t.Fatalf("node %q: %v", tc.node, err)
		}
		for _, c := range tiltCompiles(t, rec) {
			if !slices.Contains(c.env, "GOARCH="+tc.goarch) {
				t.Errorf("node %q: %s compiles with %v, want GOARCH=%s", tc.node, c.resource, c.env, tc.goarch)
			}
		}
		for _, b := range rec.dockerBuilds {
			if b.platform != "linux/"+tc.goarch {
				t.Errorf("node %q: docker_build(%s) platform %q, want linux/%s", tc.node, b.ref, b.platform, tc.goarch)
			}
		}
		for _, h := range rec.helms {
			if h.kubeVersion != tc.kubeVersion {
				t.Errorf("node %q: helm(kube_version = %q), want %q", tc.node, h.kubeVersion, tc.kubeVersion)
			}
		}
	}
}

// checkLiveUpdate: synced files come from the build context and land on a writable emptyDir
// of every pod that runs the image (the root filesystem is read-only); something then
// restarts the process.
func checkLiveUpdate(t *testing.T, b dockerBuildCall, users []workload, produced map[string]string) {
	t.Helper()
	if len(b.liveUpdate) == 0 {
		t.Errorf("docker_build(%s) has no live_update", b.ref)
		return
	}
	synced, restarted := false, false
	for _, step := range b.liveUpdate {
		switch step.kind {
		case "sync":
			synced = true
			if len(b.only) > 0 && !slices.Contains(b.only, step.local) {
				t.Errorf("docker_build(%s): sync of %s, which is not in only=", b.ref, step.local)
			}
			if produced[step.local] == "" && !exists(repoPath(step.local)) {
				t.Errorf("docker_build(%s): sync of %s, which nothing produces", b.ref, step.local)
			}
			// tilt/live.sh restarts the service from /tmp/live/<binary>.
			if step.remote != "/tmp/live/"+filepath.Base(step.local) {
				t.Errorf("docker_build(%s): sync to %s, but tilt/live.sh runs /tmp/live/%s", b.ref, step.remote, filepath.Base(step.local))
			}
			for _, w := range users {
				if !onEmptyDir(w, step.remote) {
					t.Errorf("docker_build(%s): sync to %s, which is not on a writable emptyDir of %s", b.ref, step.remote, w)
				}
			}
		case "run":
			if step.cmd != "kill -HUP 1" {
				t.Errorf("docker_build(%s): run(%q), want kill -HUP 1 (tilt/live.sh restarts on SIGHUP)", b.ref, step.cmd)
			}
			if !synced {
				t.Errorf("docker_build(%s): run before any sync", b.ref)
			}
			restarted = true
		}
	}
	if !synced || !restarted {
		t.Errorf("docker_build(%s): live_update must sync the binary and restart the process", b.ref)
	}
}

func onEmptyDir(w workload, path string) bool {
	for _, c := range w.spec.Containers {
		for _, vm := range c.VolumeMounts {
			if vm.ReadOnly || !strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/") {
				continue
			}
			for _, v := range w.spec.Volumes {
				if v.Name == vm.Name && v.EmptyDir != nil {
					return true
				}
			}
		}
	}
	return false
}
