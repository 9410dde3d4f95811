#!/bin/sh
# Refreshes the Swagger UI assets embedded by package docsui from the npm
# package swagger-ui-dist.
#
#   sh services/platform/docsui/update.sh [VERSION]
#
# VERSION defaults to the one pinned in swagger-ui/VERSION. Only the files the
# docs page serves, and the licence texts that must travel with them, are
# copied; source maps and the other bundles are left out.
set -eu

dest=$(cd "$(dirname "$0")" && pwd)/swagger-ui
version=${1:-$(cat "$dest/VERSION")}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# npm pack only downloads the tarball: no package.json, node_modules or
# install scripts touch the repository.
(cd "$tmp" && npm pack --loglevel=error "swagger-ui-dist@$version" >/dev/null)
tar -xzf "$tmp"/swagger-ui-dist-*.tgz -C "$tmp"

got=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/package/package.json")
if [ "$got" != "$version" ]; then
	echo "update.sh: asked for swagger-ui-dist $version, npm gave $got" >&2
	exit 1
fi

mkdir -p "$dest"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
	cp "$tmp/package/$f" "$dest/$f"
done
echo "$version" >"$dest/VERSION"
echo "swagger-ui-dist $version -> $dest"
