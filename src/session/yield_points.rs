//! Yield points above the operators that multiply rows, so every query can be cancelled.
//!
//! DataFusion's own rule (`EnsureCooperative`) makes sources and exchanges give the Tokio task back
//! every so many batches, which is what lets a timeout (`serve.query_timeout_ms`) or a dropped
//! request stop a query. Operators that turn one input batch into very many output batches (a
//! cross join of two `range(1, 100000)`: a million batches from thirteen) run between those yield
//! points for as long as they like: measured before this rule, such a query held a server worker
//! for 282 s with a 2 s timeout (RELIABILITY.md, the fuzzed SQL endpoint). This rule puts a
//! [`CooperativeExec`] (one unit of the task's budget per batch) above every join and unnest,
//! where it costs one counter decrement per batch.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;

/// The rule of the module docs; runs after DataFusion's own rules.
#[derive(Debug, Default)]
pub(super) struct YieldAboveRowMultipliers;

/// Whether `plan` may emit many batches per batch it reads: joins (two or more inputs) and unnest.
fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
    plan.children().len() >= 2 || plan.name() == "UnnestExec"
}

impl PhysicalOptimizerRule for YieldAboveRowMultipliers {
    fn name(&self) -> &str {
        "YieldAboveRowMultipliers"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if multiplies_rows(node.as_ref()) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::displayable;

    use crate::session::{SessionOptions, new_session};

    #[tokio::test]
    async fn a_cross_join_yields_after_each_batch_it_makes() {
        let ctx = new_session(&SessionOptions::default()).unwrap();
        let frame = ctx
            .sql("SELECT a.value * b.value FROM range(1, 100) a CROSS JOIN range(1, 100) b")
            .await
            .unwrap();
        let plan = frame.create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let join = text
            .lines()
            .position(|l| l.contains("CrossJoinExec"))
            .expect(&text);
        assert!(join > 0, "{text}");
        let above = text.lines().nth(join - 1).unwrap();
        assert!(above.trim_start().starts_with("CooperativeExec"), "{text}");
    }
}
