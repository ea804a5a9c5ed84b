//! `vigil detect` round trip: the real binary over CSV files.

use std::process::Command;

/// A steady noisy series, one reading a minute, with a spike at row `spike`.
fn series(rows: usize, spike: usize) -> String {
    let mut csv = String::from("timestamp,value\n");
    let mut x: u64 = 12345;
    for i in 0..rows {
        // A small deterministic pseudo-random wobble around 20.
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 2.0;
        let value = if i == spike { 45.0 } else { 20.0 + noise };
        let (h, m) = (i / 60, i % 60);
        if i % 2 == 0 {
            csv.push_str(&format!("2026-03-01 {h:02}:{m:02}:00,{value:.4}\n"));
        } else {
            csv.push_str(&format!("2026-03-01T{h:02}:{m:02}:00Z,{value:.4}\n"));
        }
    }
    csv
}

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    // The replay uses the built-in defaults, not whatever the environment says.
    c.env_remove("VIGIL_DETECT__SENSITIVITY")
        .env_remove("VIGIL_DETECT__THRESHOLD");
    c
}

#[test]
fn scores_every_row_and_flags_the_spike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    let text = series(600, 400);
    std::fs::write(&input, &text).expect("write input");
    let run = vigil()
        .args(["detect", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .expect("vigil runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = std::fs::read_to_string(&output).expect("output written");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 600);
    for (row, input_line) in rows.iter().zip(text.lines().skip(1)) {
        assert_eq!(
            format!("{},{}", row[0], row[1]),
            input_line,
            "echoed as read"
        );
        let score: f64 = row[2].parse().expect("a number");
        assert!((0.0..=1.0).contains(&score), "score {score}");
    }
    let flagged: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r[2].parse::<f64>().expect("number") >= 0.5)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(flagged, vec![400], "only the spike reaches the threshold");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("scored 600 readings, 1 anomaly events"),
        "{stderr}"
    );

    // Without --output the same CSV goes to stdout.
    let to_stdout = vigil()
        .args(["detect", "--input"])
        .arg(&input)
        .output()
        .expect("vigil runs");
    assert!(to_stdout.status.success());
    assert_eq!(String::from_utf8_lossy(&to_stdout.stdout), out);
}

#[test]
fn a_bad_row_is_named_by_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("bad.csv");
    let mut text = series(10, 99);
    text.push_str("2026-03-01 00:10:00,warm\n");
    std::fs::write(&input, text).expect("write input");
    let run = vigil()
        .args(["detect", "--input"])
        .arg(&input)
        .output()
        .expect("vigil runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("line 12: value \"warm\" is not a finite number"),
        "{stderr}"
    );
    let missing = vigil()
        .args(["detect", "--input", "/nonexistent/in.csv"])
        .output()
        .expect("vigil runs");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/in.csv"));
}
