{{/* Non-secret environment of one service (its ConfigMap). Call with (dict "root" $ "name" "gateway"). */}}
{{- define "shop.configData" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .name -}}
{{- $data := dict
  "HTTP_ADDR" (printf ":%d" (int $svc.port))
  "LOG_LEVEL" $root.Values.logLevel
  "SHUTDOWN_TIMEOUT" (printf "%ds" (int $root.Values.shutdownTimeoutSeconds))
  "OTEL_SERVICE_NAME" .name
-}}
{{- if $root.Values.otel.endpoint }}
{{- $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" $root.Values.otel.endpoint }}
{{- $_ := set $data "OTEL_EXPORTER_OTLP_PROTOCOL" $root.Values.otel.protocol }}
{{- end }}
{{- if eq .name "gateway" }}
{{- $_ := set $data "AUTH" $root.Values.auth.mode }}
{{- with $root.Values.auth.oidc.issuerURL }}
{{- $_ := set $data "OIDC_ISSUER_URL" . }}
{{- end }}
{{- with $root.Values.auth.oidc.audience }}
{{- $_ := set $data "OIDC_AUDIENCE" . }}
{{- end }}
{{- with $root.Values.auth.oidc.userClaim }}
{{- $_ := set $data "OIDC_USER_CLAIM" . }}
{{- end }}
{{- $_ := set $data "RATE_LIMIT" (toString (int $root.Values.rateLimit.requestsPerSecond)) }}
{{- $_ := set $data "RATE_LIMIT_BURST" (toString (int $root.Values.rateLimit.burst)) }}
{{- else if $root.Values.internal.port }}
{{- $_ := set $data "INTERNAL_ADDR" (printf ":%d" (int $root.Values.internal.port)) }}
{{- end }}
{{- if eq .name "gateway" }}
{{- $_ := set $data "ORDERS_URL" (printf "http://%s:%d" (include "shop.componentName" (dict "root" $root "name" "orders")) (int $root.Values.orders.port)) }}
{{- $_ := set $data "PAYMENTS_URL" (printf "http://%s:%d" (include "shop.componentName" (dict "root" $root "name" "payments")) (int $root.Values.payments.port)) }}
{{- end }}
{{- range $k, $v := $svc.config }}
{{- $_ := set $data $k (toString $v) }}
{{- end }}
{{- range $k, $v := $data }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}
