// Command kube-bins builds the etcd, kube-apiserver and kube-controller-manager that the
// API-server tests run, unless they are cached already, and prints their folder.
//
//	cd services/kubeapitest && GOWORK=off go run ./cmd/kube-bins
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"shop/services/kubeapitest/kubebins"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	b, err := kubebins.Ensure(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube-bins:", err)
		os.Exit(1)
	}
	fmt.Println(filepath.Dir(b.KubeAPIServer))
}
