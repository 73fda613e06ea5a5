//! `skiff resources`: effective requests/limits, QoS class and pod cgroup values (RES6, CG).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use skiff_model::resources::{self, CgroupConfig, ResourceSummaryWide};

use crate::exit;
use crate::input;
use crate::output::{self, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    manifests: input::Manifests,
    /// Output format: json, yaml, name, wide, jsonpath=TEMPLATE, jsonpath-file=FILE; the
    /// default is a table. `wide` adds the pod cgroup values.
    #[arg(short = 'o', long = "output", value_parser = OutputFormat::parse)]
    output: Option<OutputFormat>,
}

pub fn run(args: &Args) -> u8 {
    let Some((_, pods)) = args.manifests.load_and_prepare() else {
        return exit::BAD_INPUT;
    };
    if pods.is_empty() {
        eprintln!("error: no Pod in the given manifests");
        return exit::BAD_INPUT;
    }
    let cfg = CgroupConfig::default();
    let text = match &args.output {
        Some(OutputFormat::Json) => structured(&pods, output::Format::Json),
        Some(OutputFormat::Yaml) => structured(&pods, output::Format::Yaml),
        Some(OutputFormat::Wide) => Ok(table(&pods, Some(&cfg))),
        Some(OutputFormat::Name) => Ok(pods
            .iter()
            .map(|p| format!("pod/{}\n", p.metadata.name.as_deref().unwrap_or("")))
            .collect()),
        Some(OutputFormat::JsonPath(t)) => jsonpath(&pods, t),
        None => Ok(table(&pods, None)),
    };
    match text {
        Ok(t) => {
            print!("{t}");
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

fn spec_of(pod: &Pod) -> k8s_openapi::api::core::v1::PodSpec {
    pod.spec.clone().unwrap_or_default()
}

/// One object for one pod (the documented shape); a list, each entry named, for several.
fn structured(pods: &[Pod], format: output::Format) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Named {
        name: String,
        #[serde(flatten)]
        summary: resources::ResourceSummary,
    }
    match pods {
        [one] => output::render(&resources::summary(&spec_of(one)), format),
        many => {
            let list: Vec<Named> = many
                .iter()
                .map(|p| Named {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    summary: resources::summary(&spec_of(p)),
                })
                .collect();
            output::render(&list, format)
        }
    }
}

/// The template over the same object `-o json` prints.
fn jsonpath(pods: &[Pod], template: &crate::jsonpath::Template) -> anyhow::Result<String> {
    let text = structured(pods, output::Format::Json)?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    Ok(template.render(&value)?)
}

fn table(pods: &[Pod], wide: Option<&CgroupConfig>) -> String {
    let mut out = String::new();
    for pod in pods {
        let spec = spec_of(pod);
        let summary = resources::summary(&spec);
        if pods.len() > 1 {
            out.push_str(&format!(
                "pod/{}\n",
                pod.metadata.name.as_deref().unwrap_or("")
            ));
        }
        let names: BTreeSet<&String> = summary
            .requests
            .keys()
            .chain(summary.limits.keys())
            .collect();
        let mut rows = vec![[
            "RESOURCE".to_string(),
            "REQUEST".to_string(),
            "LIMIT".to_string(),
        ]];
        for name in names {
            let cell = |m: &std::collections::BTreeMap<String, String>| {
                m.get(name).cloned().unwrap_or_else(|| "-".into())
            };
            rows.push([name.clone(), cell(&summary.requests), cell(&summary.limits)]);
        }
        let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0) + 3;
        let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0) + 3;
        for r in &rows {
            out.push_str(format!("{:<w0$}{:<w1$}{}", r[0], r[1], r[2]).trim_end());
            out.push('\n');
        }
        out.push_str(&format!("QoS class: {}\n", summary.qos_class.as_str()));
        if let Some(cfg) = wide {
            let ResourceSummaryWide { pod_cgroup: cg, .. } = resources::summary_wide(&spec, cfg);
            let v1_quota = cg.cpu_quota_us.map_or("-1".to_string(), |q| q.to_string());
            let v1_mem = cg
                .memory_limit_bytes
                .map_or("unlimited".to_string(), |m| m.to_string());
            out.push_str("Pod cgroup:\n");
            out.push_str(&format!(
                "  v1: cpu.shares={} cpu.cfs_quota_us={} cpu.cfs_period_us={} memory.limit_in_bytes={}\n",
                cg.cpu_shares, v1_quota, cg.cpu_period_us, v1_mem
            ));
            out.push_str(&format!(
                "  v2: cpu.weight={} cpu.max=\"{}\" memory.max={}\n",
                cg.cpu_weight,
                cg.cpu_max(),
                cg.memory_max()
            ));
        }
    }
    out
}
