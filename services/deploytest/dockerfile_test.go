package deploytest

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerfile is the part of a Dockerfile the tests read.
type dockerfile struct {
	path   string
	args   map[string]string // ARG name -> default (global and per stage)
	stages []stage
}

type stage struct {
	from, alias string
	copies      []copyInstr
	runs        []string
	user        string
	entrypoint  string
	expose      []string
}

type copyInstr struct {
	from string   // --from stage or image; "" for the build context
	srcs []string // sources, unexpanded
	dest string
}

// parseDockerfile reads the instructions (continuations joined, comments dropped).
func parseDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	df := &dockerfile{path: path, args: map[string]string{}}
	var logical []string
	var cur strings.Builder
	scanner := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		logical = append(logical, cur.String())
	}
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		var st *stage
		if len(df.stages) > 0 {
			st = &df.stages[len(df.stages)-1]
		}
		switch strings.ToUpper(instr) {
		case "ARG":
			name, def, _ := strings.Cut(rest, "=")
			df.args[name] = def
		case "FROM":
			fields := strings.Fields(rest)
			var s stage
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					s.alias = fields[i+1]
					i++
				default:
					s.from = fields[i]
				}
			}
			df.stages = append(df.stages, s)
		case "COPY", "ADD":
			if st == nil {
				t.Fatalf("%s: %s before FROM", path, instr)
			}
			var c copyInstr
			var plain []string
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					c.from = v
				} else if !strings.HasPrefix(f, "--") {
					plain = append(plain, f)
				}
			}
			c.srcs, c.dest = plain[:len(plain)-1], plain[len(plain)-1]
			st.copies = append(st.copies, c)
		case "RUN":
			st.runs = append(st.runs, rest)
		case "USER":
			st.user = rest
		case "ENTRYPOINT":
			st.entrypoint = rest
		case "EXPOSE":
			st.expose = append(st.expose, strings.Fields(rest)...)
		}
	}
	return df
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// expand substitutes build args (given ones first, then ARG defaults).
func (df *dockerfile) expand(s string, given map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string {
		name := argRef.FindStringSubmatch(m)[1]
		if v, ok := given[name]; ok {
			return v
		}
		return df.args[name]
	})
}

// copySources are the build-context paths the Dockerfile copies, expanded.
func (df *dockerfile) copySources(given map[string]string) []string {
	var out []string
	for _, st := range df.stages {
		for _, c := range st.copies {
			if c.from != "" {
				continue
			}
			for _, src := range c.srcs {
				out = append(out, strings.TrimSuffix(df.expand(src, given), "/"))
			}
		}
	}
	return out
}

// goWorkModules are the directories go.work uses.
func goWorkModules(t *testing.T) []string {
	t.Helper()
	var out []string
	inUse := false
	for _, line := range strings.Split(string(readFile(t, repoPath("go.work"))), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "use ("):
			inUse = true
		case inUse && line == ")":
			inUse = false
		case strings.HasPrefix(line, "use "):
			out = append(out, filepath.Clean(strings.TrimSpace(strings.TrimPrefix(line, "use "))))
		case inUse && line != "" && !strings.HasPrefix(line, "//"):
			out = append(out, filepath.Clean(line))
		}
	}
	if len(out) == 0 {
		t.Fatal("go.work uses no modules")
	}
	return out
}

// goBuild is the service's `go build` command as its Dockerfile runs it.
type goBuild struct {
	env   []string
	flags []string
	pkg   string
}

func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	quote := rune(0)
	inField := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote = r
			inField = true
		case r == ' ' || r == '\t':
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if inField {
		out = append(out, cur.String())
	}
	return out
}

func (df *dockerfile) goBuild(t *testing.T) goBuild {
	t.Helper()
	given := map[string]string{"TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "BUILDPLATFORM": "linux/" + runtime.GOARCH}
	for _, st := range df.stages {
		for _, run := range st.runs {
			if !strings.Contains(run, "go build") {
				continue
			}
			fields := shellFields(df.expand(run, given))
			var gb goBuild
			i := 0
			for ; i < len(fields) && strings.HasPrefix(fields[i], "--mount"); i++ {
			}
			for ; i < len(fields) && strings.Contains(fields[i], "=") && fields[i] != "go"; i++ {
				gb.env = append(gb.env, fields[i])
			}
			if i+1 >= len(fields) || fields[i] != "go" || fields[i+1] != "build" {
				t.Fatalf("%s: cannot read the go build command %q", df.path, run)
			}
			args := fields[i+2:]
			for j := 0; j < len(args); j++ {
				switch {
				case args[j] == "&&" || args[j] == ";":
					j = len(args)
				case args[j] == "-o":
					j++
				case strings.HasPrefix(args[j], "-"):
					gb.flags = append(gb.flags, args[j])
				default:
					gb.pkg = args[j]
				}
			}
			return gb
		}
	}
	t.Fatalf("%s has no go build", df.path)
	return goBuild{}
}

func TestDockerfiles(t *testing.T) {
	modules := goWorkModules(t)
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			df := parseDockerfile(t, repoPath("services", svc, "Dockerfile"))
			if len(df.stages) < 2 {
				t.Fatalf("want a multi-stage build, got %d stages", len(df.stages))
			}
			aliases := map[string]bool{}
			for _, st := range df.stages {
				from := df.expand(st.from, nil)
				if from != "scratch" && !aliases[from] {
					if reason := imageUnpinned(from); reason != "" {
						t.Errorf("FROM %s %s", from, reason)
					}
				}
				aliases[st.alias] = true
			}
			final := df.stages[len(df.stages)-1]
			if base := df.expand(final.from, nil); base != "scratch" && !strings.Contains(base, "distroless/static") {
				t.Errorf("final image is %s, want scratch or distroless static", base)
			}
			if uid, _, _ := strings.Cut(final.user, ":"); uid == "" || uid == "0" || uid == "root" {
				t.Errorf("final image runs as %q, want a nonroot user", final.user)
			} else if n, err := strconv.Atoi(uid); err != nil || n < 1000 {
				t.Errorf("USER %s: use a numeric uid >= 1000 so runAsNonRoot can verify it", final.user)
			}
			var entrypoint []string
			if err := json.Unmarshal([]byte(final.entrypoint), &entrypoint); err != nil || len(entrypoint) != 1 || entrypoint[0] != "/shop-"+svc {
				t.Errorf("ENTRYPOINT %s, want [\"/shop-%s\"] (exec form: there is no shell)", final.entrypoint, svc)
			}
			if !slices.Contains(final.expose, strconv.Itoa(int(ports[svc]))) {
				t.Errorf("EXPOSE %v, want %d", final.expose, ports[svc])
			}
			// go.work needs every module's go.mod; the sources needed are platform and the service.
			copied := map[string]bool{}
			for _, src := range df.copySources(nil) {
				copied[src] = true
				matches, _ := filepath.Glob(repoPath(src))
				if len(matches) == 0 && !strings.Contains(src, "*") {
					t.Errorf("COPY %s: no such file", src)
				}
			}
			if !copied["go.work"] {
				t.Errorf("go.work is not copied")
			}
			for _, mod := range modules {
				if !copied[filepath.Join(mod, "go.*")] && !copied[filepath.Join(mod, "go.mod")] {
					t.Errorf("go.work uses %s, but the Dockerfile does not copy its go.mod", mod)
				}
			}
			for _, dir := range []string{"services/platform", "services/" + svc} {
				if !copied[dir] {
					t.Errorf("sources of %s are not copied", dir)
				}
			}
			gb := df.goBuild(t)
			if !slices.Contains(gb.env, "CGO_ENABLED=0") || !slices.Contains(gb.flags, "-trimpath") {
				t.Errorf("go build must run with CGO_ENABLED=0 and -trimpath: env %v flags %v", gb.env, gb.flags)
			}
			if gb.pkg != "./services/"+svc {
				t.Errorf("go build builds %q, want ./services/%s", gb.pkg, svc)
			}
		})
	}
	ignore := string(readFile(t, repoPath(".dockerignore")))
	for _, keep := range []string{"!go.work", "!services/", "!build/tilt/", "!tilt/live.sh"} {
		if !slices.Contains(strings.Split(ignore, "\n"), keep) {
			t.Errorf(".dockerignore does not keep %s", keep)
		}
	}
}

// Each service builds exactly as its Dockerfile builds it, and the binary is static: no ELF
// interpreter, no dynamic section, no shared libraries (the image has no libc).
func TestServiceBinariesAreStatic(t *testing.T) {
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			gb := parseDockerfile(t, repoPath("services", svc, "Dockerfile")).goBuild(t)
			out := filepath.Join(t.TempDir(), "shop-"+svc)
			cmd := exec.Command("go", append(append([]string{"build"}, gb.flags...), "-o", out, gb.pkg)...)
			cmd.Dir = repoRoot
			// The services build in workspace mode, as in the image (this module runs with GOWORK=off).
			for _, e := range os.Environ() {
				if !strings.HasPrefix(e, "GOWORK=") {
					cmd.Env = append(cmd.Env, e)
				}
			}
			cmd.Env = append(cmd.Env, gb.env...)
			if output, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s (env %v): %v\n%s", cmd, gb.env, err, output)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("binary has a %s program header: not static", p.Type)
				}
			}
			if s := f.Section(".interp"); s != nil {
				t.Errorf("binary has an .interp section")
			}
			if s := f.Section(".dynamic"); s != nil {
				t.Errorf("binary has a .dynamic section")
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("binary needs shared libraries %v", libs)
			}
			info, err := buildinfo.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOOS"] != "linux" {
				t.Errorf("build settings CGO_ENABLED=%s -trimpath=%s GOOS=%s", settings["CGO_ENABLED"], settings["-trimpath"], settings["GOOS"])
			}
			if info.Path != "shop/services/"+svc {
				t.Errorf("binary's main package %s, want shop/services/%s", info.Path, svc)
			}
		})
	}
}

// This module's Helm and kustomize dependencies must never raise the services' versions: it
// stays out of go.work, and the services do not require it.
func TestDeployTestStaysOutOfTheWorkspace(t *testing.T) {
	for _, mod := range goWorkModules(t) {
		if mod == filepath.Join("services", "deploytest") {
			t.Fatalf("go.work uses services/deploytest: its dependencies would join the services' build list")
		}
		gomod := string(readFile(t, repoPath(mod, "go.mod")))
		if strings.Contains(gomod, "shop/services/deploytest") {
			t.Errorf("%s/go.mod refers to shop/services/deploytest", mod)
		}
		if strings.Contains(gomod, "helm.sh/helm") || strings.Contains(gomod, "sigs.k8s.io/kustomize") {
			t.Errorf("%s/go.mod requires Helm or kustomize", mod)
		}
	}
}
