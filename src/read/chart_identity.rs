//! Which known chart version a vendored chart is: its `templates/` compared with every released
//! state of the two community charts. An identical copy is that version, whatever its
//! `Chart.yaml` says; a chart whose templates match none is a fork, whose rendering difyplan
//! does not know.
//!
//! The digest of a chart is SHA-256 over the sorted lines `PATH\0SHA256(CONTENT)\n`, one per
//! file under `templates/` (PATH relative to it, `/`-separated), its first 16 hex digits kept.
//! The table holds the digest of every commit of `charts/dify/` in BorisPolonsky/dify-helm
//! (0.31.0-rc1 to 0.38.0-rc2, at 3c4ef10) and douban/charts (0.4.0 to 0.9.1, at b34a8e1) with the
//! `version:` its Chart.yaml had there, computed from the two repositories' git history.

use super::helm::Chart;
use crate::read::error::Error;
use sha2::{Digest, Sha256};
use std::path::Path;

/// (chart, version in Chart.yaml, digest of templates/) for every known state.
const KNOWN: &[(Chart, &str, &str)] = &[
    (Chart::DifyHelm, "0.38.0-rc2", "3c79dd28648c0ff7"),
    (Chart::DifyHelm, "0.38.0-rc1", "3c79dd28648c0ff7"),
    (Chart::DifyHelm, "0.38.0-rc1", "f359708f71ec6661"),
    (Chart::DifyHelm, "0.38.0-rc1", "720dd160eadbeffa"),
    (Chart::DifyHelm, "0.38.0-rc1", "42c126d551f27df0"),
    (Chart::DifyHelm, "0.38.0-rc1", "b7cdc4c732ebd231"),
    (Chart::DifyHelm, "0.38.0-rc1", "2a94f1a140d7f8dc"),
    (Chart::DifyHelm, "0.37.0", "2a94f1a140d7f8dc"),
    (Chart::DifyHelm, "0.37.0", "fa5933f24f7ffab3"),
    (Chart::DifyHelm, "0.37.0", "a7d8cbdae8cbce6b"),
    (Chart::DifyHelm, "0.37.0", "316a9e109f1de005"),
    (Chart::DifyHelm, "0.37.0", "1e97c70eceea3451"),
    (Chart::DifyHelm, "0.37.0", "656318486f9c9293"),
    (Chart::DifyHelm, "0.37.0", "fe641e13a787a033"),
    (Chart::DifyHelm, "0.37.0", "fee7750b256b9d1c"),
    (Chart::DifyHelm, "0.37.0-rc2", "fee7750b256b9d1c"),
    (Chart::DifyHelm, "0.37.0-rc1", "fee7750b256b9d1c"),
    (Chart::DifyHelm, "0.37.0-rc1", "07d84451d5a97372"),
    (Chart::DifyHelm, "0.36.0", "07d84451d5a97372"),
    (Chart::DifyHelm, "0.36.0", "73120bdc7adffb04"),
    (Chart::DifyHelm, "0.36.0", "5e8e901f1f6fad96"),
    (Chart::DifyHelm, "0.36.0", "9978f6e127828854"),
    (Chart::DifyHelm, "0.36.0", "f77603edc7628d4e"),
    (Chart::DifyHelm, "0.36.0", "921d29152889f2ec"),
    (Chart::DifyHelm, "0.36.0", "1fa8679b202c7ab4"),
    (Chart::DifyHelm, "0.36.0", "f250bf95a06bc792"),
    (Chart::DifyHelm, "0.36.0-rc2", "f250bf95a06bc792"),
    (Chart::DifyHelm, "0.36.0-rc1", "f250bf95a06bc792"),
    (Chart::DifyHelm, "0.35.0", "f250bf95a06bc792"),
    (Chart::DifyHelm, "0.35.0", "0fb11e98e138888b"),
    (Chart::DifyHelm, "0.35.0", "5cd79102fa88dc3a"),
    (Chart::DifyHelm, "0.35.0", "170c8eb85d022c4d"),
    (Chart::DifyHelm, "0.35.0", "09ec6113bb68b5f1"),
    (Chart::DifyHelm, "0.35.0", "92423bbf4feb68e0"),
    (Chart::DifyHelm, "0.35.0", "4ccd965e241ae8f1"),
    (Chart::DifyHelm, "0.35.0", "f16c205f8975ed34"),
    (Chart::DifyHelm, "0.35.0", "f6f58a03bf0b4019"),
    (Chart::DifyHelm, "0.35.0-rc1", "f6f58a03bf0b4019"),
    (Chart::DifyHelm, "0.34.0", "f6f58a03bf0b4019"),
    (Chart::DifyHelm, "0.34.0", "4387fb0243d3bcc6"),
    (Chart::DifyHelm, "0.34.0", "af1d7a9770176a7f"),
    (Chart::DifyHelm, "0.34.0", "0be51c8f3d0d2a84"),
    (Chart::DifyHelm, "0.34.0", "a9ed95ccaea913ed"),
    (Chart::DifyHelm, "0.34.0", "0f2cd792a3f4ac92"),
    (Chart::DifyHelm, "0.34.0", "024c8cea231fbc9d"),
    (Chart::DifyHelm, "0.34.0", "2e278723c2414b41"),
    (Chart::DifyHelm, "0.34.0-rc2", "2e278723c2414b41"),
    (Chart::DifyHelm, "0.34.0-rc1", "2e278723c2414b41"),
    (Chart::DifyHelm, "0.33.0", "2e278723c2414b41"),
    (Chart::DifyHelm, "0.33.0", "9f6bac11a9fef97d"),
    (Chart::DifyHelm, "0.33.0", "9c603dcfd321e142"),
    (Chart::DifyHelm, "0.33.0-rc1", "9c603dcfd321e142"),
    (Chart::DifyHelm, "0.32.0", "9c603dcfd321e142"),
    (Chart::DifyHelm, "0.32.0", "750d646e275e9664"),
    (Chart::DifyHelm, "0.32.0", "bb7a38fa07344b42"),
    (Chart::DifyHelm, "0.32.0", "371dc6531ff31843"),
    (Chart::DifyHelm, "0.32.0", "02f3a4d4007f2d7a"),
    (Chart::DifyHelm, "0.32.0-rc1", "371dc6531ff31843"),
    (Chart::DifyHelm, "0.31.0", "371dc6531ff31843"),
    (Chart::DifyHelm, "0.31.0", "53f4410f3fa17b52"),
    (Chart::DifyHelm, "0.31.0", "87925f5d884bb413"),
    (Chart::DifyHelm, "0.31.0", "86f1b32107378b6f"),
    (Chart::DifyHelm, "0.31.0", "166756ccb477d9db"),
    (Chart::DifyHelm, "0.31.0-rc1", "166756ccb477d9db"),
    (Chart::Douban, "0.9.1", "1d98e977ddfdc893"),
    (Chart::Douban, "0.9.0", "fadd1de3969526f8"),
    (Chart::Douban, "0.8.2", "499223e7921e2b48"),
    (Chart::Douban, "0.8.1", "1df577cec363c4bd"),
    (Chart::Douban, "0.8.0", "1df577cec363c4bd"),
    (Chart::Douban, "0.7.1", "bf00da84b17aeaa5"),
    (Chart::Douban, "0.7.0", "db431364cb46c1c5"),
    (Chart::Douban, "0.6.8", "db431364cb46c1c5"),
    (Chart::Douban, "0.6.7", "db431364cb46c1c5"),
    (Chart::Douban, "0.6.6", "14d0a4b025da19f8"),
    (Chart::Douban, "0.6.5", "045af867ec901678"),
    (Chart::Douban, "0.6.4", "698a37ce29f6a8f5"),
    (Chart::Douban, "0.6.3", "eb163f8c0d43221c"),
    (Chart::Douban, "0.6.2", "24ac2411a7d56c5b"),
    (Chart::Douban, "0.6.1", "408d4ac8a98abc92"),
    (Chart::Douban, "0.6.0", "a96102025d541856"),
    (Chart::Douban, "0.5.1", "faad4aacde749432"),
    (Chart::Douban, "0.5.0", "e6f54ffd9b69f6d2"),
    (Chart::Douban, "0.4.1", "36e2749ce77da960"),
    (Chart::Douban, "0.4.0", "1652b72d1432fede"),
];

/// The digest of a chart folder's `templates/`, or `None` when it has none.
pub fn templates_digest(chart_dir: &Path) -> Result<Option<String>, Error> {
    let root = chart_dir.join("templates");
    if !root.is_dir() {
        return Ok(None);
    }
    let mut lines = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|cause| super::ReadError::Open { file: crate::safety::shown_path(&dir), cause })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = super::read_bytes(&path)?;
                let rel = path.strip_prefix(&root).unwrap_or(&path);
                let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                let mut line = rel.join("/").into_bytes();
                line.push(0);
                line.extend(hex(&Sha256::digest(&bytes)).into_bytes());
                line.push(b'\n');
                lines.push(line);
            }
        }
    }
    lines.sort();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l);
    }
    Ok(Some(hex(&h.finalize())[..16].to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a vendored chart's templates are.
#[derive(Debug, PartialEq, Eq)]
pub enum Identity {
    /// Byte for byte a released state of this version (the one said, when it is among them).
    Known(&'static str),
    /// The templates match no released state of the chart: a fork.
    Fork,
}

/// Identify a chart's templates; `said` is the version its Chart.yaml states.
pub fn identify(chart: Chart, said: Option<&str>, digest: &str) -> Identity {
    let matches: Vec<&'static str> =
        KNOWN.iter().filter(|(c, _, d)| *c == chart && *d == digest).map(|(_, v, _)| *v).collect();
    match said.and_then(|s| matches.iter().find(|v| **v == s.trim().trim_start_matches('v'))) {
        Some(v) => Identity::Known(v),
        None => matches.first().map_or(Identity::Fork, |v| Identity::Known(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_of_sorted_paths_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/sub")).unwrap();
        std::fs::write(dir.path().join("templates/b.yaml"), "b").unwrap();
        std::fs::write(dir.path().join("templates/sub/a.yaml"), "a").unwrap();
        let one = templates_digest(dir.path()).unwrap().unwrap();
        assert_eq!(one.len(), 16);
        std::fs::write(dir.path().join("templates/b.yaml"), "b2").unwrap();
        assert_ne!(templates_digest(dir.path()).unwrap().unwrap(), one);
        assert_eq!(templates_digest(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn identical_templates_are_their_version_and_others_a_fork() {
        assert_eq!(identify(Chart::Douban, Some("0.4.1"), "36e2749ce77da960"), Identity::Known("0.4.1"));
        // A copy whose Chart.yaml was bumped by hand is still the version its templates are.
        assert_eq!(identify(Chart::Douban, Some("0.4.2"), "36e2749ce77da960"), Identity::Known("0.4.1"));
        assert_eq!(identify(Chart::Douban, Some("0.4.1"), "0000000000000000"), Identity::Fork);
    }
}
