//! Synthetic ad-tech logs for `examples/adtech/`: `strata sample --kind adtech`.
//!
//! Writes the example's contract layout under one directory:
//! - `ads_views/<YYYY-MM-DD>.csv`: `advertiser_id,product_id,type,date`, one `impression` row per
//!   ad shown and one `click` row per click on it;
//! - `product_views/<YYYY-MM-DD>.csv`: `advertiser_id,product_id,date`, one row per product page
//!   viewed on the advertiser's site;
//! - `advertiser_ids.csv`: `advertiser_id`, the active advertisers (the others still appear in
//!   the logs, as in the original system, and must be filtered out).
//!
//! The model, for realistic skew: advertisers get traffic by a Zipf-like weight; each advertiser's
//! products get impressions by their own Zipf-like popularity (a few popular products) and views by
//! a second popularity that shares half its order with the first; each (advertiser, product) has
//! a click-through rate drawn around [`AdtechSpec::ctr`] (log-normal, so a few products click far
//! better than most). Each day draws its own rows.
//!
//! Invariant, as for the MovieLens sample: the same spec gives the same bytes, and each day's files
//! depend only on the spec and that day, so generating 30 days rewrites the first 7 exactly as a
//! 7-day spec wrote them. Files are written through `<name>.tmp` and renamed.

use std::io::{self, Write};
use std::path::Path;

use chrono::NaiveDate;

use super::{Rng, det_exp, det_ln, write_replacing};

/// Stream tags: one per purpose, so a change in one never shifts another's numbers.
const TAG_ADVERTISERS: u64 = 0xAD_0001;
const TAG_PRODUCTS: u64 = 0xAD_0002;
const TAG_ADS_DAY: u64 = 0xAD_0003;
const TAG_VIEWS_DAY: u64 = 0xAD_0004;

/// The shape of an ad-tech sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdtechSpec {
    /// Days of logs, from `start`.
    pub days: u32,
    pub start: NaiveDate,
    pub advertisers: u32,
    /// Products in each advertiser's catalogue.
    pub products: u32,
    /// Ads shown per day, over every advertiser.
    pub impressions_per_day: u64,
    /// Product pages viewed per day, over every advertiser.
    pub views_per_day: u64,
    /// Share of advertisers listed as active.
    pub active_fraction: f64,
    /// Typical click-through rate.
    pub ctr: f64,
    pub seed: u64,
}

impl Default for AdtechSpec {
    /// The example's committed fixture: a week of a small advertiser network.
    fn default() -> Self {
        AdtechSpec {
            days: 7,
            start: NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date"),
            advertisers: 10,
            products: 40,
            impressions_per_day: 2_000,
            views_per_day: 1_000,
            active_fraction: 0.8,
            ctr: 0.01,
            seed: 42,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtechSummary {
    pub days: u32,
    pub active_advertisers: u32,
    /// Rows of `ads_views` (impressions and clicks) over every day.
    pub ad_rows: u64,
    pub view_rows: u64,
}

impl AdtechSpec {
    /// Problems with the spec, as a message naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.days == 0 || self.days > 3660 {
            return Err(format!("--days {}: give 1 to 3660", self.days));
        }
        if self.advertisers == 0 || self.advertisers > 1_000_000 {
            return Err(format!(
                "--advertisers {}: give 1 to 1,000,000",
                self.advertisers
            ));
        }
        if self.products == 0 || self.products > 1_000_000 {
            return Err(format!("--products {}: give 1 to 1,000,000", self.products));
        }
        if !(0.0..=1.0).contains(&self.active_fraction) {
            return Err("the active fraction must be within 0..1".into());
        }
        if !(self.ctr > 0.0 && self.ctr < 1.0) {
            return Err(format!("--ctr {}: give a rate between 0 and 1", self.ctr));
        }
        Ok(())
    }

    /// The days written, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.start.iter_days().take(self.days as usize)
    }
}

/// Writes the sample under `out` (created if needed) and returns what it holds.
pub fn write_adtech(spec: &AdtechSpec, out: &Path) -> io::Result<AdtechSummary> {
    spec.validate()
        .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
    let network = Network::new(spec);
    std::fs::create_dir_all(out.join("ads_views"))?;
    std::fs::create_dir_all(out.join("product_views"))?;
    let active = network.active();
    write_replacing(&out.join("advertiser_ids.csv"), |w| {
        writeln!(w, "advertiser_id")?;
        for advertiser in &active {
            writeln!(w, "{}", advertiser_id(*advertiser))?;
        }
        Ok(())
    })?;
    let mut summary = AdtechSummary {
        days: spec.days,
        active_advertisers: active.len() as u32,
        ad_rows: 0,
        view_rows: 0,
    };
    for (index, date) in spec.dates().enumerate() {
        let day = date.format("%Y-%m-%d").to_string();
        let mut ad_rows = 0;
        write_replacing(&out.join(format!("ads_views/{day}.csv")), |w| {
            ad_rows = network.write_ads_day(spec, index as u64, &day, w)?;
            Ok(())
        })?;
        let mut view_rows = 0;
        write_replacing(&out.join(format!("product_views/{day}.csv")), |w| {
            view_rows = network.write_views_day(spec, index as u64, &day, w)?;
            Ok(())
        })?;
        summary.ad_rows += ad_rows;
        summary.view_rows += view_rows;
    }
    Ok(summary)
}

pub fn advertiser_id(index: u32) -> String {
    format!("adv{:03}", index + 1)
}

pub fn product_id(index: u32) -> String {
    format!("p{:05}", index + 1)
}

/// Cumulative integer weights, drawn from by binary search.
struct Weights(Vec<u64>);

impl Weights {
    fn new(weights: impl Iterator<Item = f64>) -> Weights {
        let mut total = 0u64;
        let cumulative = weights
            .map(|w| {
                total += (w * 1e6).max(1.0) as u64;
                total
            })
            .collect();
        Weights(cumulative)
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let total = *self.0.last().expect("at least one weight");
        let x = rng.below(total);
        self.0.partition_point(|&c| c <= x)
    }
}

/// The advertisers, their catalogues and what is fixed across days.
struct Network {
    advertisers: Weights,
    /// Per advertiser: impression popularity, view popularity, click-through rate per product.
    catalogues: Vec<Catalogue>,
    active: Vec<bool>,
}

struct Catalogue {
    impressions: Weights,
    views: Weights,
    ctr: Vec<f64>,
}

/// Zipf-like weight of the item at `rank` (0-based): `1 / (rank + 1)^s`.
fn zipf(rank: usize, s: f64) -> f64 {
    det_exp(-s * det_ln(rank as f64 + 1.0))
}

/// A seeded permutation of `0..n` (Fisher-Yates).
fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.index(i + 1));
    }
    order
}

impl Network {
    fn new(spec: &AdtechSpec) -> Network {
        let mut rng = Rng::stream(spec.seed, TAG_ADVERTISERS, 0);
        let n = spec.advertisers as usize;
        let traffic_rank = permutation(&mut rng, n);
        let advertisers = Weights::new((0..n).map(|a| zipf(traffic_rank[a], 0.7)));
        let active = (0..n).map(|_| rng.unit() < spec.active_fraction).collect();
        let catalogues = (0..n)
            .map(|a| {
                let mut rng = Rng::stream(spec.seed, TAG_PRODUCTS, a as u64);
                let p = spec.products as usize;
                let shown = permutation(&mut rng, p);
                // Views follow the ads' order for half the catalogue and their own for the rest:
                // popular products are often, not always, the most viewed.
                let own = permutation(&mut rng, p);
                let viewed: Vec<usize> = (0..p)
                    .map(|i| if rng.unit() < 0.5 { shown[i] } else { own[i] })
                    .collect();
                let ctr = (0..p)
                    .map(|_| (spec.ctr * det_exp(0.8 * rng.normal() - 0.32)).min(0.5))
                    .collect();
                Catalogue {
                    impressions: Weights::new((0..p).map(|i| zipf(shown[i], 1.1))),
                    views: Weights::new((0..p).map(|i| zipf(viewed[i], 1.0))),
                    ctr,
                }
            })
            .collect();
        Network {
            advertisers,
            catalogues,
            active,
        }
    }

    fn active(&self) -> Vec<u32> {
        (0..self.active.len() as u32)
            .filter(|a| self.active[*a as usize])
            .collect()
    }

    /// Global product index of an advertiser's `k`-th product (ids are unique across advertisers).
    fn product(&self, advertiser: usize, k: usize) -> u32 {
        let per = self.catalogues[0].ctr.len();
        (advertiser * per + k) as u32
    }

    fn write_ads_day(
        &self,
        spec: &AdtechSpec,
        day: u64,
        date: &str,
        w: &mut impl Write,
    ) -> io::Result<u64> {
        let mut rng = Rng::stream(spec.seed, TAG_ADS_DAY, day);
        writeln!(w, "advertiser_id,product_id,type,date")?;
        let mut rows = 0;
        for _ in 0..spec.impressions_per_day {
            let a = self.advertisers.draw(&mut rng);
            let catalogue = &self.catalogues[a];
            let k = catalogue.impressions.draw(&mut rng);
            let (advertiser, product) = (advertiser_id(a as u32), product_id(self.product(a, k)));
            writeln!(w, "{advertiser},{product},impression,{date}")?;
            rows += 1;
            if rng.unit() < catalogue.ctr[k] {
                writeln!(w, "{advertiser},{product},click,{date}")?;
                rows += 1;
            }
        }
        Ok(rows)
    }

    fn write_views_day(
        &self,
        spec: &AdtechSpec,
        day: u64,
        date: &str,
        w: &mut impl Write,
    ) -> io::Result<u64> {
        let mut rng = Rng::stream(spec.seed, TAG_VIEWS_DAY, day);
        writeln!(w, "advertiser_id,product_id,date")?;
        for _ in 0..spec.views_per_day {
            let a = self.advertisers.draw(&mut rng);
            let k = self.catalogues[a].views.draw(&mut rng);
            writeln!(
                w,
                "{},{},{date}",
                advertiser_id(a as u32),
                product_id(self.product(a, k))
            )?;
        }
        Ok(spec.views_per_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, rel: &str) -> String {
        std::fs::read_to_string(dir.join(rel)).unwrap()
    }

    #[test]
    fn days_are_the_same_bytes_whatever_the_range() {
        let week = tempfile::tempdir().unwrap();
        let month = tempfile::tempdir().unwrap();
        let spec = AdtechSpec::default();
        let summary = write_adtech(&spec, week.path()).unwrap();
        write_adtech(&AdtechSpec { days: 30, ..spec }, month.path()).unwrap();
        for rel in [
            "advertiser_ids.csv",
            "ads_views/2026-11-01.csv",
            "ads_views/2026-11-07.csv",
            "product_views/2026-11-04.csv",
        ] {
            assert_eq!(read(week.path(), rel), read(month.path(), rel), "{rel}");
        }
        assert!(month.path().join("ads_views/2026-11-30.csv").exists());
        assert!(!week.path().join("ads_views/2026-11-08.csv").exists());
        assert_ne!(
            read(week.path(), "ads_views/2026-11-01.csv"),
            read(week.path(), "ads_views/2026-11-02.csv")
        );
        assert_eq!(summary.view_rows, 7 * 1_000);
        assert!(summary.active_advertisers > 0 && summary.active_advertisers < 10);
    }

    #[test]
    fn traffic_is_skewed_and_clicks_are_about_one_percent() {
        let dir = tempfile::tempdir().unwrap();
        let spec = AdtechSpec {
            days: 1,
            impressions_per_day: 200_000,
            ..AdtechSpec::default()
        };
        write_adtech(&spec, dir.path()).unwrap();
        let text = read(dir.path(), "ads_views/2026-11-01.csv");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("advertiser_id,product_id,type,date"));
        let mut per_product = std::collections::HashMap::new();
        let (mut impressions, mut clicks) = (0u64, 0u64);
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields[3], "2026-11-01");
            match fields[2] {
                "impression" => {
                    impressions += 1;
                    *per_product.entry(fields[1].to_string()).or_insert(0u64) += 1;
                }
                "click" => clicks += 1,
                other => panic!("type {other}"),
            }
        }
        assert_eq!(impressions, 200_000);
        let ctr = clicks as f64 / impressions as f64;
        assert!((0.005..0.02).contains(&ctr), "CTR {ctr}");
        // A few popular products: the top 5% of products take over a quarter of the ads.
        let mut counts: Vec<u64> = per_product.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: u64 = counts[..counts.len() / 20].iter().sum();
        assert!(top * 4 > impressions, "top 5% took {top} of {impressions}");
    }
}
