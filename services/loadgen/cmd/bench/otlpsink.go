package main

import (
	"context"
	"net"
	"sync/atomic"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// otlpSink receives the shop's telemetry over OTLP/gRPC, as a collector
// would in production, counts it and drops it: the services pay for
// recording and exporting every span and metric, as they do in a
// deployment, and nothing is stored.
type otlpSink struct {
	coltrace.UnimplementedTraceServiceServer

	server  *grpc.Server
	addr    string
	spans   atomic.Int64
	exports atomic.Int64 // requests of any signal
}

// startOTLPSink listens on a free local port.
func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{server: grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20)), addr: ln.Addr().String()}
	coltrace.RegisterTraceServiceServer(s.server, s)
	colmetrics.RegisterMetricsServiceServer(s.server, metricsServer{otlpSink: s})
	collogs.RegisterLogsServiceServer(s.server, logsServer{})
	go s.server.Serve(ln)
	return s, nil
}

// env is the OTEL_* environment that points a service at the sink: the
// chart's protocol (grpc), and the SDK's defaults for everything else
// (every span sampled, batches of up to 512 spans every 5 s at most,
// metrics every 60 s).
func (s *otlpSink) env() []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + s.addr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}
}

func (s *otlpSink) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	s.exports.Add(1)
	var n int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
		}
	}
	s.spans.Add(n)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// metricsServer and logsServer serve the other two signals, whose Export
// methods have the same name as the traces'.
type metricsServer struct {
	colmetrics.UnimplementedMetricsServiceServer
	*otlpSink
}

func (m metricsServer) Export(_ context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	m.exports.Add(1)
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

type logsServer struct {
	collogs.UnimplementedLogsServiceServer
}

func (logsServer) Export(context.Context, *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	return &collogs.ExportLogsServiceResponse{}, nil
}

func (s *otlpSink) stop() { s.server.Stop() }
