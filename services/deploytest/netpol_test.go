package deploytest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// endpoint is a pod that may send or receive traffic.
type endpoint struct {
	role      string // gateway, orders, ..., or a synthetic role
	namespace string
	labels    map[string]string
	ports     []corev1.ContainerPort
}

// flow is one allowed connection: source role -> destination role:port/protocol.
type flow string

func newFlow(src, dst string, port int32, proto corev1.Protocol) flow {
	return flow(fmt.Sprintf("%s -> %s:%d/%s", src, dst, port, proto))
}

// netpolWorld is everything that talks in the namespace, plus DNS, a client in another
// namespace and an ingress controller.
func netpolWorld(t *testing.T, chart, infra *manifest) []endpoint {
	t.Helper()
	var out []endpoint
	for _, w := range chart.add(infra).workloads() {
		role := w.labels["app.kubernetes.io/component"]
		if role == "" {
			role = w.labels["app.kubernetes.io/name"]
		}
		var ports []corev1.ContainerPort
		for _, c := range w.spec.Containers {
			ports = append(ports, c.Ports...)
		}
		out = append(out, endpoint{role: role, namespace: w.namespace, labels: w.labels, ports: ports})
	}
	dnsPorts := []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 53, Protocol: corev1.ProtocolTCP}}
	out = append(out,
		endpoint{role: "kube-dns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}, ports: dnsPorts},
		endpoint{role: "client", namespace: "elsewhere", labels: map[string]string{"app": "client"}},
		endpoint{role: "ingress-controller", namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}},
		// A pod of the shop's namespace that is not part of the release.
		endpoint{role: "stranger", namespace: namespace, labels: map[string]string{"app": "debug"}},
	)
	return out
}

func namespaceLabels(ns string) map[string]string {
	return map[string]string{"kubernetes.io/metadata.name": ns}
}

func peerMatches(t *testing.T, policyNS string, peer networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if peer.IPBlock != nil {
		return false // addresses outside the cluster: no pod here
	}
	if peer.NamespaceSelector == nil && e.namespace != policyNS {
		return false
	}
	if peer.NamespaceSelector != nil && !selects(t, peer.NamespaceSelector, namespaceLabels(e.namespace)) {
		return false
	}
	if peer.PodSelector != nil && !selects(t, peer.PodSelector, e.labels) {
		return false
	}
	return true
}

func portMatches(ports []networkingv1.NetworkPolicyPort, dst endpoint, p corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, np := range ports {
		proto := corev1.ProtocolTCP
		if np.Protocol != nil {
			proto = *np.Protocol
		}
		if proto != protocolOf(p) {
			continue
		}
		if np.Port == nil {
			return true
		}
		if np.Port.Type == intstr.String {
			if np.Port.StrVal == p.Name {
				return true
			}
			continue
		}
		end := np.Port.IntVal
		if np.EndPort != nil {
			end = *np.EndPort
		}
		if p.ContainerPort >= np.Port.IntVal && p.ContainerPort <= end {
			return true
		}
	}
	return false
}

func protocolOf(p corev1.ContainerPort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

func hasType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		return typ == networkingv1.PolicyTypeIngress || (typ == networkingv1.PolicyTypeEgress && len(p.Spec.Egress) > 0)
	}
	for _, pt := range p.Spec.PolicyTypes {
		if pt == typ {
			return true
		}
	}
	return false
}

// allowed evaluates Kubernetes NetworkPolicy semantics for one connection.
func allowed(t *testing.T, policies []*networkingv1.NetworkPolicy, src, dst endpoint, p corev1.ContainerPort) bool {
	egress, ingress := true, true
	egressSelected, ingressSelected := false, false
	egressOK, ingressOK := false, false
	for _, pol := range policies {
		ns := pol.Namespace
		if ns == "" {
			ns = namespace
		}
		sel := pol.Spec.PodSelector
		if ns == src.namespace && hasType(pol, networkingv1.PolicyTypeEgress) && selects(t, &sel, src.labels) {
			egressSelected = true
			for _, rule := range pol.Spec.Egress {
				peerOK := len(rule.To) == 0
				for _, peer := range rule.To {
					peerOK = peerOK || peerMatches(t, ns, peer, dst)
				}
				if peerOK && portMatches(rule.Ports, dst, p) {
					egressOK = true
				}
			}
		}
		if ns == dst.namespace && hasType(pol, networkingv1.PolicyTypeIngress) && selects(t, &sel, dst.labels) {
			ingressSelected = true
			for _, rule := range pol.Spec.Ingress {
				peerOK := len(rule.From) == 0
				for _, peer := range rule.From {
					peerOK = peerOK || peerMatches(t, ns, peer, src)
				}
				if peerOK && portMatches(rule.Ports, dst, p) {
					ingressOK = true
				}
			}
		}
	}
	if egressSelected {
		egress = egressOK
	}
	if ingressSelected {
		ingress = ingressOK
	}
	return egress && ingress
}

// allowedFlows lists every connection the policies allow that involves a pod of the release.
func allowedFlows(t *testing.T, policies []*networkingv1.NetworkPolicy, world []endpoint, isChart func(string) bool) map[flow]bool {
	out := map[flow]bool{}
	for _, src := range world {
		for _, dst := range world {
			if !isChart(src.role) && !isChart(dst.role) {
				continue
			}
			for _, p := range dst.ports {
				if allowed(t, policies, src, dst, p) {
					out[newFlow(src.role, dst.role, p.ContainerPort, protocolOf(p))] = true
				}
			}
		}
	}
	return out
}

// expectedFlows is DESIGN.md's traffic, plus DNS and telemetry: clients -> gateway,
// gateway -> orders and payments (their HTTP port, never the internal one), gateway -> Redis
// (rate limits) and the OIDC issuer (Dex, when it is the issuer), orders and payments ->
// PostgreSQL and Redis, every service -> the collector, every release pod -> DNS, and the helm
// test pod -> gateway. gatewayClient says who counts as a client.
func expectedFlows(world []endpoint, isChart func(string) bool, gatewayClient func(endpoint) bool, telemetry, dexIssuer bool) map[flow]bool {
	egress := map[string][]string{ // role -> "dstRole:port/proto"
		"gateway":  {"orders:8002/TCP", "payments:8001/TCP", "redis:6379/TCP"},
		"orders":   {"postgresql:5432/TCP", "redis:6379/TCP"},
		"payments": {"postgresql:5432/TCP", "redis:6379/TCP"},
		"test":     {"gateway:8000/TCP"},
	}
	if dexIssuer {
		egress["gateway"] = append(egress["gateway"], "dex:5556/TCP")
	}
	for role := range egress {
		egress[role] = append(egress[role], "kube-dns:53/UDP", "kube-dns:53/TCP")
		if telemetry && role != "test" {
			egress[role] = append(egress[role], "otel-collector:4317/TCP", "otel-collector:4318/TCP")
		}
	}
	ingressFrom := map[string]func(endpoint) bool{
		"gateway":  func(src endpoint) bool { return gatewayClient(src) || src.role == "test" },
		"orders":   func(src endpoint) bool { return src.role == "gateway" },
		"payments": func(src endpoint) bool { return src.role == "gateway" },
		"test":     func(endpoint) bool { return false },
	}
	out := map[flow]bool{}
	for _, src := range world {
		for _, dst := range world {
			if !isChart(src.role) && !isChart(dst.role) {
				continue
			}
			for _, p := range dst.ports {
				key := fmt.Sprintf("%s:%d/%s", dst.role, p.ContainerPort, protocolOf(p))
				if isChart(src.role) && !contains(egress[src.role], key) {
					continue
				}
				if isChart(dst.role) && !ingressFrom[dst.role](src) {
					continue
				}
				out[newFlow(src.role, dst.role, p.ContainerPort, protocolOf(p))] = true
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The NetworkPolicies allow exactly the flows of DESIGN.md, DNS and telemetry: in particular
// nothing outside the namespace (and nothing but the gateway inside it) reaches orders and
// payments, and nothing at all reaches their internal listener.
func TestNetworkPoliciesAllowExactlyTheDesignedFlows(t *testing.T) {
	infra := devInfra(t)
	isChart := func(role string) bool {
		return role == "gateway" || role == "orders" || role == "payments" || role == "test"
	}
	cases := []struct {
		chart         chartCase
		gatewayClient func(endpoint) bool
		telemetry     bool
		dexIssuer     bool
	}{
		{chartCases[0], func(endpoint) bool { return true }, true, false},
		{chartCases[1], func(endpoint) bool { return true }, true, true},
		{chartCases[2], func(e endpoint) bool { return e.role == "ingress-controller" }, true, false},
		{chartCase{name: "no-telemetry", set: []string{"otel.endpoint="}}, func(endpoint) bool { return true }, false, false},
		// An issuer outside the cluster: the gateway may reach port 443 anywhere, which is no pod here.
		{chartCase{name: "external-issuer", set: []string{"auth.oidc.issuerURL=https://login.example.com"}}, func(endpoint) bool { return true }, true, false},
	}
	for _, c := range cases {
		t.Run(c.chart.name, func(t *testing.T) {
			objects, hooks := renderCase(t, c.chart)
			chart := objects.add(hooks)
			world := netpolWorld(t, chart, infra)
			roles := map[string]bool{}
			for _, e := range world {
				roles[e.role] = true
			}
			for _, r := range []string{"gateway", "orders", "payments", "test", "postgresql", "redis", "otel-collector", "jaeger"} {
				if !roles[r] {
					t.Fatalf("no pod with role %s in the rendered world", r)
				}
			}
			policies := all[networkingv1.NetworkPolicy](objects)
			checkDefaultDeny(t, policies, world, isChart)
			got := allowedFlows(t, policies, world, isChart)
			want := expectedFlows(world, isChart, c.gatewayClient, c.telemetry, c.dexIssuer)
			for f := range got {
				if !want[f] {
					t.Errorf("allowed but not designed: %s", f)
				}
			}
			for f := range want {
				if !got[f] {
					t.Errorf("designed but blocked: %s", f)
				}
			}
			if t.Failed() {
				t.Logf("allowed flows:\n%s", strings.Join(sortedFlows(got), "\n"))
			}
			// The internal listeners exist, and nothing reaches them.
			internal := 0
			for _, e := range world {
				for _, p := range e.ports {
					if p.Name == "internal" && (e.role == "orders" || e.role == "payments") {
						internal++
						for _, src := range world {
							if allowed(t, policies, src, e, p) {
								t.Errorf("%s reaches the internal listener of %s (port %d)", src.role, e.role, p.ContainerPort)
							}
						}
					}
				}
			}
			if internal != 2 {
				t.Errorf("found %d internal ports, want one on orders and one on payments", internal)
			}
			// The public endpoints of orders and payments stay unreachable from outside the namespace.
			for _, f := range sortedFlows(got) {
				if (strings.HasPrefix(f, "client ->") || strings.HasPrefix(f, "ingress-controller ->") || strings.HasPrefix(f, "stranger ->")) &&
					(strings.Contains(f, "-> orders:") || strings.Contains(f, "-> payments:")) {
					t.Errorf("internal endpoints reachable: %s", f)
				}
			}
		})
	}
}

// Every pod of the release is selected by a policy of each type with no rules.
func checkDefaultDeny(t *testing.T, policies []*networkingv1.NetworkPolicy, world []endpoint, isChart func(string) bool) {
	t.Helper()
	var deny *networkingv1.NetworkPolicy
	for _, p := range policies {
		if len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 && hasType(p, networkingv1.PolicyTypeIngress) && hasType(p, networkingv1.PolicyTypeEgress) {
			deny = p
		}
	}
	if deny == nil {
		t.Fatal("no default-deny NetworkPolicy")
	}
	for _, e := range world {
		sel := deny.Spec.PodSelector
		if isChart(e.role) && e.namespace == namespace && !selects(t, &sel, e.labels) {
			t.Errorf("default deny %s does not select %s", deny.Name, e.role)
		}
		if !isChart(e.role) && e.namespace == namespace && selects(t, &sel, e.labels) && (sel.MatchLabels != nil || sel.MatchExpressions != nil) {
			t.Errorf("default deny %s reaches beyond the release: selects %s", deny.Name, e.role)
		}
	}
}

func sortedFlows(m map[flow]bool) []string {
	var out []string
	for f := range m {
		out = append(out, string(f))
	}
	sort.Strings(out)
	return out
}
