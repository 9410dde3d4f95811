package deploytest

import (
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The gateway gets its authentication and rate-limit settings; orders and payments serve their
// internal endpoints on a port no Service publishes, with a token from their Secret.
func TestChartWiresAuthenticationAndTheInternalListener(t *testing.T) {
	cases := []struct {
		chart                chartCase
		issuer, audience     string
		userClaim            string
		hs256                bool
		internalPort         int32
		internalTokenFromSet string
	}{
		{chart: chartCases[0], internalPort: 9000},
		{chart: chartCases[1], issuer: "http://dex:5556/dex", audience: "shop", userClaim: "federated_claims.user_id", internalPort: 9000},
		{chart: chartCase{name: "secret-and-token", set: []string{
			"auth.hs256Secret=" + "a-development-secret-of-at-least-32-bytes", "internal.token=an-internal-token-of-some-length", "internal.port=9100",
		}}, hs256: true, internalPort: 9100, internalTokenFromSet: "an-internal-token-of-some-length"},
		{chart: chartCase{name: "no-internal", set: []string{"internal.port=0"}}},
	}
	for _, c := range cases {
		t.Run(c.chart.name, func(t *testing.T) {
			objects, _ := renderCase(t, c.chart)
			gw := find[corev1.ConfigMap](objects, releaseName+"-gateway")
			if gw == nil {
				t.Fatal("no gateway ConfigMap")
			}
			for k, want := range map[string]string{"AUTH": "jwt", "RATE_LIMIT": "100", "RATE_LIMIT_BURST": "200", "OIDC_ISSUER_URL": c.issuer, "OIDC_AUDIENCE": c.audience, "OIDC_USER_CLAIM": c.userClaim} {
				if got := gw.Data[k]; got != want {
					t.Errorf("gateway %s = %q, want %q", k, got, want)
				}
			}
			secret := find[corev1.Secret](objects, releaseName+"-gateway")
			if secret == nil || secret.StringData["REDIS_URL"] == "" {
				t.Fatalf("gateway Secret with REDIS_URL missing: %+v", secret)
			}
			if _, ok := secret.StringData["JWT_HS256_SECRET"]; ok != c.hs256 {
				t.Errorf("gateway Secret has JWT_HS256_SECRET: %v, want %v", ok, c.hs256)
			}
			deployments := chartWorkloads(t, objects)
			gwEnv := deployments["gateway"].Spec.Template.Spec.Containers[0]
			if e, ok := envVar(gwEnv, "REDIS_URL"); !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("gateway REDIS_URL does not come from a Secret")
			}
			if _, ok := envVar(gwEnv, "JWT_HS256_SECRET"); ok != c.hs256 {
				t.Errorf("gateway has JWT_HS256_SECRET: %v, want %v", ok, c.hs256)
			}
			for _, svc := range []string{"orders", "payments"} {
				checkInternalListener(t, objects, deployments[svc], svc, c.internalPort, c.internalTokenFromSet)
			}
		})
	}
}

func checkInternalListener(t *testing.T, m *manifest, d *appsv1.Deployment, svc string, port int32, token string) {
	t.Helper()
	name := releaseName + "-" + svc
	cm := find[corev1.ConfigMap](m, name)
	secret := find[corev1.Secret](m, name)
	c := d.Spec.Template.Spec.Containers[0]
	p, declared := containerPort(c, "internal", 0)
	_, hasEnv := envVar(c, "INTERNAL_TOKEN")
	if port == 0 {
		if declared || hasEnv || cm.Data["INTERNAL_ADDR"] != "" {
			t.Errorf("%s: internal listener configured with internal.port 0", svc)
		}
		return
	}
	if !declared || p.ContainerPort != port {
		t.Errorf("%s: container port internal = %v, want %d", svc, p.ContainerPort, port)
	}
	if got := cm.Data["INTERNAL_ADDR"]; got != ":"+strconv.Itoa(int(port)) {
		t.Errorf("%s: INTERNAL_ADDR = %q, want :%d", svc, got, port)
	}
	if !hasEnv {
		t.Errorf("%s: no INTERNAL_TOKEN", svc)
	}
	if _, ok := cm.Data["INTERNAL_TOKEN"]; ok {
		t.Errorf("%s: INTERNAL_TOKEN is in the ConfigMap", svc)
	}
	got := secret.StringData["INTERNAL_TOKEN"]
	if len(got) < 16 || (token != "" && got != token) {
		t.Errorf("%s: Secret INTERNAL_TOKEN %q, want %q or 16 bytes at least", svc, got, token)
	}
	for _, s := range all[corev1.Service](m) {
		for _, sp := range s.Spec.Ports {
			if sp.TargetPort.StrVal == "internal" || sp.Port == port || sp.TargetPort.IntVal == port {
				t.Errorf("Service %s publishes the internal port", s.Name)
			}
		}
	}
}
