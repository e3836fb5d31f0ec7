//! Drawing the step graph for `strata dag`: plain text, Graphviz DOT or Mermaid.
//!
//! Owns the three formats and nothing else: it reads a built [`Dag`] and asks each step for its
//! label, origin, writes and [`Shape`]; it knows no step kinds, so adding one changes nothing here.
//! Invariant: output lists steps in the graph's order and is a pure function of the graph, so the
//! same project always renders the same bytes.

use std::fmt::Write as _;

use crate::catalog::TableName;
use crate::engine::Engine;
use crate::pipeline::dag::Dag;
use crate::pipeline::step::Shape;

/// Output formats of `strata dag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

impl Dag {
    /// The graph as text (`strata dag`): `text`, `dot` or `mermaid`.
    pub fn render(&self, format: DagFormat) -> String {
        match format {
            DagFormat::Text => text(self),
            DagFormat::Dot => dot(self),
            DagFormat::Mermaid => mermaid(self),
        }
    }
}

/// One line per step: table, label, origin, reads, and writes when they are not just its table.
fn text(dag: &Dag) -> String {
    let mut out = String::new();
    for step in dag.ordered() {
        let kind = step.label();
        let reads: Vec<String> = step.reads.iter().map(|t| t.to_string()).collect();
        let _ = write!(out, "{} [{kind}] <- {}", step.table, step.origin());
        if !reads.is_empty() {
            let _ = write!(out, " reads {}", reads.join(", "));
        }
        let variables: Vec<String> = step.variables().iter().map(|v| format!("${v}")).collect();
        if !variables.is_empty() {
            let _ = write!(out, " with {}", variables.join(", "));
        }
        let writes = step.writes();
        if writes != [step.table.clone()] {
            let writes: Vec<String> = writes.iter().map(|t| t.to_string()).collect();
            let _ = write!(out, " writes {}", writes.join(", "));
        }
        // Said only when some step leaves the process, so the usual output stays as it was.
        if dag.engine != Engine::Local {
            let _ = write!(out, " runs on {}", step.engine(&dag.engine).describe());
        }
        out.push('\n');
    }
    out
}

fn dot(dag: &Dag) -> String {
    let mut out = String::from("digraph strata {\n  rankdir=LR;\n");
    for step in dag.ordered() {
        let shape = match step.shape() {
            Shape::Source => "cylinder",
            Shape::Query => "box",
            Shape::Model => "component",
        };
        let _ = writeln!(out, "  \"{}\" [shape={shape}];", step.table);
        for read in &step.after {
            let _ = writeln!(out, "  \"{read}\" -> \"{}\";", step.table);
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(dag: &Dag) -> String {
    let mut out = String::from("flowchart LR\n");
    for step in dag.ordered() {
        let id = mermaid_id(&step.table);
        let (open, close) = match step.shape() {
            Shape::Source => ("[(", ")]"),
            Shape::Query => ("[", "]"),
            Shape::Model => ("[[", "]]"),
        };
        let _ = writeln!(out, "  {id}{open}\"{}\"{close}", step.table);
        for read in &step.after {
            let _ = writeln!(out, "  {} --> {id}", mermaid_id(read));
        }
    }
    out
}

fn mermaid_id(table: &TableName) -> String {
    format!("{}_{}", table.layer, table.name)
}
