#!/bin/sh
# Lays out the container's final stage in OUTDIR: exactly what the image holds.
# Used by the Dockerfile (builder stage, then `COPY --from=builder /rootfs/ /`) and by
# tests/k8s/final-stage.sh, which runs the binary in that layout with chroot.
#   scripts/k8s-rootfs.sh BINARY OUTDIR
# BINARY must be statically linked (built with RUSTFLAGS="-C target-feature=+crt-static"
# and an explicit --target); the script refuses a dynamic one, because the image has no libc.
set -eu
bin="$1"
out="$2"

if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    echo "k8s-rootfs: $bin is dynamically linked; build it with -C target-feature=+crt-static" >&2
    exit 1
fi
if readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    echo "k8s-rootfs: $bin needs shared libraries:" >&2
    readelf -d "$bin" | grep '(NEEDED)' >&2
    exit 1
fi

rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc" "$out/models" "$out/tmp"
# Symbols are only for debugging; the image ships without them.
strip --strip-all -o "$out/usr/local/bin/inferd" "$bin"
chmod 0555 "$out/usr/local/bin/inferd"
# The same users as distroless: 65532 is "nonroot". Nothing in inferd looks users up; the
# files are here for tools (ps, kubectl debug) that print names.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$out/etc/group"
chmod 0444 "$out/etc/passwd" "$out/etc/group"
# /models: mount point for a model repository (read-only volume); empty in the image.
chmod 0755 "$out/models"
# /tmp: writable scratch when the root filesystem is not read-only (docker run); in Kubernetes
# an emptyDir is mounted here.
chmod 1777 "$out/tmp"
