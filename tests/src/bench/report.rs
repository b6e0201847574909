//! The results: rows of `{metric, value, unit, baseline, ratio}` like every jvpn benchmark, the
//! machine they were measured on (as `machine.*` rows), a table on stdout and `tunnel.json` in
//! `$JVPN_BENCH_DIR` (set by `cargo xtask bench`), else `<workspace>/target/bench/`.

use serde_json::{json, Value};

/// One figure, maybe compared with another of the same run.
#[derive(Clone, Debug)]
struct Row {
    metric: String,
    value: f64,
    unit: &'static str,
    baseline: Option<(String, f64)>,
}

/// The figures collected so far.
#[derive(Debug)]
pub struct Report {
    rows: Vec<Row>,
    load_at_start: String,
}

impl Report {
    /// An empty report; notes the machine's load now, before the benchmark adds to it.
    pub fn start() -> Self {
        Self {
            rows: Vec::new(),
            load_at_start: Machine::read().load_average,
        }
    }

    /// Records `metric`.
    pub fn add(&mut self, metric: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push(Row {
            metric: metric.into(),
            value,
            unit,
            baseline: None,
        });
    }

    /// Records `metric` compared with `baseline`, which must be recorded already.
    pub fn add_vs(
        &mut self,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
        baseline: &str,
    ) {
        let base = self
            .rows
            .iter()
            .find(|row| row.metric == baseline)
            .unwrap_or_else(|| panic!("baseline {baseline} is not recorded yet"))
            .value;
        self.rows.push(Row {
            metric: metric.into(),
            value,
            unit,
            baseline: Some((baseline.to_owned(), base)),
        });
    }

    /// Prints the table.
    pub fn print(&self) {
        println!(
            "\n{:<44} {:>10} {:>7} {:>9}  baseline",
            "metric", "value", "unit", "ratio"
        );
        for row in &self.rows {
            let (ratio, baseline) = match &row.baseline {
                Some((name, base)) => (format!("{:.2}x", row.value / base), name.as_str()),
                None => ("-".to_owned(), "-"),
            };
            println!(
                "{:<44} {:>10.3} {:>7} {:>9}  {baseline}",
                row.metric, row.value, row.unit, ratio
            );
        }
        let machine = Machine::read();
        println!(
            "\nmachine: {} cores ({}), kernel {}, load average {} at the start, {} at the end",
            machine.cores, machine.cpu, machine.kernel, self.load_at_start, machine.load_average
        );
    }

    /// Writes `tunnel.json` and returns its path.
    pub fn write(&self) -> std::path::PathBuf {
        self.write_as("tunnel")
    }

    /// Writes `NAME.json` and returns its path.
    pub fn write_as(&self, name: &str) -> std::path::PathBuf {
        let mut values: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let (baseline, ratio) = match &row.baseline {
                    Some((name, base)) => (json!(name), json!(row.value / base)),
                    None => (Value::Null, Value::Null),
                };
                json!({"metric": row.metric, "value": row.value, "unit": row.unit,
                       "baseline": baseline, "ratio": ratio})
            })
            .collect();
        let machine = Machine::read();
        for (metric, value, unit) in [
            ("machine.cores", json!(machine.cores), "cores"),
            ("machine.cpu", json!(machine.cpu), "model"),
            ("machine.kernel", json!(machine.kernel), "release"),
            (
                "machine.load_average_start",
                json!(self.load_at_start),
                "1/5/15 min",
            ),
            (
                "machine.load_average_end",
                json!(machine.load_average),
                "1/5/15 min",
            ),
        ] {
            values.push(json!({"metric": metric, "value": value, "unit": unit,
                               "baseline": null, "ratio": null}));
        }
        let dir = std::env::var_os("JVPN_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
            });
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&values).expect("serializing the results");
        std::fs::write(&path, text + "\n")
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

/// Nearest-rank percentile `q` (0..=1) of `samples`; 0 for none.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The arithmetic mean of `samples`; 0 for none.
pub fn mean(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// What the figures were measured on.
#[derive(Debug)]
struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
    load_average: String,
}

impl Machine {
    fn read() -> Self {
        let file = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = file("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: file("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average: file("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}
