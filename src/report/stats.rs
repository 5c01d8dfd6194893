//! Stats as the CLI and the API present them: the figures are the store's
//! (`store::stats`, summed from the verdicts stored with each call); what is added here is
//! the plan they are set against — OUT-6's monthly budgets of the groups, a plan in the
//! config rather than a verdict about a call.
//! May use: the store's reader and rows, core's `Config`.

use crate::store::{Filter, StatsBy, StatsRow, Store};
use callwarden_core::config::Config;

/// The rows of `stats --by by` for `q`; `one_month`: `q` is one month (`--month`), so
/// rows by group carry each group's budget and what was spent over it.
pub fn rows(
    reader: &dyn Store,
    by: StatsBy,
    q: &Filter,
    one_month: bool,
    cfg: &Config,
) -> anyhow::Result<Vec<StatsRow>> {
    let mut rows = reader.stats(by, q)?;
    if by == StatsBy::Group && one_month {
        apply_budgets(&mut rows, |g| {
            cfg.groups.iter().find(|x| x.name == g).map(|x| i64::from(x.monthly_budget) * 100)
        });
    }
    Ok(rows)
}

/// OUT-6: set each group row's monthly budget (`budget_fen(group)`, fen) and what was
/// spent over it. For rows of one month by group; rows without a budget keep nulls.
pub fn apply_budgets(rows: &mut [StatsRow], budget_fen: impl Fn(&str) -> Option<i64>) {
    for row in rows {
        if let Some(b) = row.key.as_deref().and_then(&budget_fen).filter(|&b| b > 0) {
            row.budget_fen = Some(b);
            row.over_budget_fen = Some(row.cost_fen.saturating_sub(b).max(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_by_group() {
        let row = |k: Option<&str>, cost| StatsRow { key: k.map(Into::into), cost_fen: cost, ..StatsRow::default() };
        let mut rows = vec![row(Some("office"), 600), row(Some("sales"), 30), row(None, 90), row(Some("ops"), 100)];
        apply_budgets(&mut rows, |g| match g {
            "office" => Some(500),
            "ops" => Some(1000),
            "sales" => Some(0),
            _ => None,
        });
        let got: Vec<(Option<i64>, Option<i64>)> = rows.iter().map(|r| (r.budget_fen, r.over_budget_fen)).collect();
        assert_eq!(got, [(Some(500), Some(100)), (None, None), (None, None), (Some(1000), Some(0))]);
    }
}
