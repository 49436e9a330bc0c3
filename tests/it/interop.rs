//! One cache, two tools: what tektra writes, Python's huggingface_hub reads
//! offline, and the other way round.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_what_we_downloaded_offline() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/model", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = stdout(&out);
    let py = fx.python(
        "from huggingface_hub import hf_hub_download, snapshot_download\n\
         print(snapshot_download('org/model'))\n\
         print(hf_hub_download('org/model', 'weights.bin'))\n\
         print(hf_hub_download('org/model', 'extra/notes.md'))",
        true,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let lines: Vec<String> = stdout(&py).lines().map(str::to_string).collect();
    assert_eq!(lines[0], ours);
    assert_eq!(lines[1], format!("{ours}/weights.bin"));
    assert!(std::fs::read(&lines[1]).unwrap() == fx.source("org/model/weights.bin"));
    assert_eq!(std::fs::read(&lines[2]).unwrap(), b"notes\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn we_read_what_python_downloaded_offline() {
    let fx = Fixture::new().await;
    let py = fx.python(
        "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/model'))",
        false,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let theirs = stdout(&py);
    let before = fx.server.stats();
    let out = fx
        .tektra(&["download", "org/model", "--offline", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), theirs);
    let out = fx
        .tektra(&["download", "org/model", "weights.bin", "--offline", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/model/weights.bin"));
    // And online, the blobs Python fetched count as cached: nothing moves.
    let out = fx
        .tektra(&["download", "org/model", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fx.server.stats().content_bytes, before.content_bytes);
}
