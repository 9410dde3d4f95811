module shop/services/contract

go 1.26.0

require (
	github.com/google/uuid v1.6.0
	go.opentelemetry.io/otel v1.47.0
	shop/services/platform v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/danielgtaylor/huma/v2 v2.37.2 // indirect
)

replace shop/services/platform => ../platform
