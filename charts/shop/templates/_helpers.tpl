{{/* Chart name, overridable. */}}
{{- define "shop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: the release name, with the chart name unless it is already in it. */}}
{{- define "shop.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The three services, in a fixed order. */}}
{{- define "shop.services" -}}
gateway orders payments
{{- end }}

{{/* Name of one service's resources. Call with (dict "root" $ "name" "gateway"). */}}
{{- define "shop.componentName" -}}
{{- printf "%s-%s" (include "shop.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "shop.labels" -}}
helm.sh/chart: {{ include "shop.chart" . }}
app.kubernetes.io/name: {{ include "shop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shop
{{- end }}

{{/* Selector labels of one service. Call with (dict "root" $ "name" "gateway"). */}}
{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* All labels of one service's objects. */}}
{{- define "shop.componentLabels" -}}
{{ include "shop.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Image tag of one service. Call with (dict "root" $ "name" "gateway"). */}}
{{- define "shop.imageTag" -}}
{{- $svc := index .root.Values .name -}}
{{- $svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion | toString -}}
{{- end }}

{{/* Image reference of one service. Call with (dict "root" $ "name" "gateway"). */}}
{{- define "shop.image" -}}
{{- $svc := index .root.Values .name -}}
{{- $repo := $svc.image.repository -}}
{{- if .root.Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repo }}
{{- end }}
{{- if $svc.image.digest }}
{{- printf "%s@%s" $repo $svc.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (include "shop.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding DATABASE_URL and REDIS_URL of orders or payments. */}}
{{- define "shop.secretName" -}}
{{- $svc := index .root.Values .name -}}
{{- if $svc.existingSecret }}
{{- $svc.existingSecret }}
{{- else }}
{{- include "shop.componentName" . }}
{{- end }}
{{- end }}

{{/* INTERNAL_TOKEN of orders or payments: internal.token, else the one the release's Secret
holds already (kept on upgrades), else a new random one. */}}
{{- define "shop.internalToken" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .name -}}
{{- if $root.Values.internal.token -}}
{{- $root.Values.internal.token -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "shop.componentName" .) -}}
{{- $kept := dig "data" $svc.existingSecretKeys.internalToken "" ($existing | default dict) -}}
{{- if $kept -}}
{{- $kept | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* Name of the gateway's Secret (REDIS_URL, JWT_HS256_SECRET). */}}
{{- define "shop.gatewaySecretName" -}}
{{- if .Values.gateway.existingSecret }}
{{- .Values.gateway.existingSecret }}
{{- else }}
{{- include "shop.componentName" (dict "root" . "name" "gateway") }}
{{- end }}
{{- end }}

{{/* Refuses a grace period that does not cover the preStop sleep plus the drain. */}}
{{- define "shop.validate" -}}
{{- $need := add .Values.shutdownTimeoutSeconds .Values.preStopSleepSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + shutdownTimeoutSeconds (%d)" (int .Values.terminationGracePeriodSeconds) (int $need)) -}}
{{- end -}}
{{- range $name := splitList " " (include "shop.services" .) }}
{{- $svc := index $.Values $name }}
{{- if and $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas must not exceed maxReplicas" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Egress rule towards the OpenTelemetry collector (nothing when telemetry is off). */}}
{{- define "shop.collectorEgress" -}}
{{- if .Values.otel.endpoint }}
- to:
    {{- toYaml .Values.networkPolicy.collector.to | nindent 4 }}
  ports:
    {{- range .Values.networkPolicy.collector.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{- end }}
