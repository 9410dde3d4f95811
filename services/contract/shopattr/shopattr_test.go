package shopattr_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"shop/services/contract/shopattr"
)

// Every key is in the shop namespace, once.
func TestKeysShareTheNamespace(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range shopattr.Keys {
		name := string(k)
		if !strings.HasPrefix(name, shopattr.Namespace) || len(name) == len(shopattr.Namespace) {
			t.Errorf("key %q is not in the %q namespace", name, shopattr.Namespace)
		}
		if seen[name] {
			t.Errorf("key %q is listed twice", name)
		}
		seen[name] = true
	}
	if len(seen) < 9 {
		t.Errorf("Keys lists %d keys, want every key of the package", len(seen))
	}
}

// Keys lists every attribute.Key constant of the package, so the test
// above sees them all.
func TestKeysListsEveryConstant(t *testing.T) {
	consts := keyConstants(t, "shopattr.go")
	listed := map[string]bool{}
	for _, k := range shopattr.Keys {
		listed[string(k)] = true
	}
	for _, name := range consts {
		if !listed[name] {
			t.Errorf("key %q is not in Keys", name)
		}
	}
	if len(consts) != len(shopattr.Keys) {
		t.Errorf("%d key constants, %d in Keys", len(consts), len(shopattr.Keys))
	}
}

// No Go file of the services spells a shop attribute name as a string:
// the names live in this package only.
func TestNamesAreDefinedOnce(t *testing.T) {
	services, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	here, _ := filepath.Abs(".")
	err = filepath.WalkDir(services, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == here || d.Name() == "tools" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, shopattr.Namespace) {
					t.Errorf("%s spells %q; use package shopattr", path, s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keyConstants returns the values of the attribute.Key constants in file.
func keyConstants(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			sel, ok := vs.Type.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Key" {
				continue
			}
			for _, v := range vs.Values {
				s, _ := strconv.Unquote(v.(*ast.BasicLit).Value)
				names = append(names, s)
			}
		}
	}
	return names
}
