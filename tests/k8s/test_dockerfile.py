"""The Dockerfile and tests/k8s/final-stage.sh must describe the same image: same build flags,
same layout script, and a final stage that holds nothing else. (No Docker engine runs in CI;
final-stage.sh runs the layout, this keeps it honest.)"""

import re

from manifests import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
FINAL_STAGE_SH = (ROOT / "tests" / "k8s" / "final-stage.sh").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE)
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    return steps[last_from:]


def test_final_stage_is_the_rootfs_layout_and_nothing_else():
    stage = final_stage()
    assert stage[0] == ("FROM", "scratch")
    copies = [rest for word, rest in stage if word in ("COPY", "ADD")]
    assert copies == ["--from=builder /rootfs/ /"]
    assert ("USER", "65532:65532") in stage
    assert ("ENTRYPOINT", '["/usr/local/bin/inferd"]') in stage
    assert ("CMD", '["serve"]') in stage
    assert not [w for w, _ in stage if w in ("ENV", "RUN", "VOLUME")], "the chroot test runs with env -i"


def test_build_flags_match_the_chroot_check():
    for text in (DOCKERFILE, FINAL_STAGE_SH):
        assert 'RUSTFLAGS="-C target-feature=+crt-static"' in text
        assert re.search(r"cargo build --release --locked --target \"\$triple\" -p inferd", text)
        assert 'triple="$(uname -m)-unknown-linux-gnu"' in text
    assert 'scripts/k8s-rootfs.sh "target/$triple/release/inferd" /rootfs' in DOCKERFILE
    assert 'scripts/k8s-rootfs.sh "$INFERD_STATIC_BIN" "$rootfs"' in FINAL_STAGE_SH


def test_dockerignore_keeps_the_context_small_and_clean():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", "target", "target-*", ".venv"} <= ignored
    # What the build needs must not be ignored.
    assert not ignored & {"crates", "Cargo.toml", "Cargo.lock", "scripts"}
