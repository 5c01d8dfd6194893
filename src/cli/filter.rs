//! Filters shared by `calls`, `stats`, `violations` and `recordings list`: --from, --to
//! (dates or RFC 3339), --ext, --group, --class, --rule, --number.

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Filter {
    /// From this date (YYYY-MM-DD, site zone) or RFC 3339 instant, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this date (inclusive) or RFC 3339 instant (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Calls where this extension is caller or callee.
    #[arg(long)]
    pub ext: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub class: Option<String>,
    #[arg(long)]
    pub rule: Option<String>,
    /// Calls whose dialled or normalised number contains this.
    #[arg(long)]
    pub number: Option<String>,
}
