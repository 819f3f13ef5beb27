//! Weighted max-min fair shares of the slots among classes.

/// One class's input to the share computation.
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    /// Sessions held plus users waiting.
    pub demand: u32,
    pub reserved: u32,
    pub limit: u32,
    pub weight: u32,
    pub priority: i32,
}

/// Computes each class's fair share of `capacity` slots.
///
/// Every class first gets its reservation, up to its demand. The slots
/// left go to the highest priority first; within one priority they are
/// shared weighted max-min: each class gets slots in proportion to its
/// weight until its demand or limit is met, and what it cannot use goes
/// to the others.
pub fn fair_shares(capacity: u32, claims: &[Claim]) -> Vec<f64> {
    let caps: Vec<f64> = claims.iter().map(|claim| f64::from(claim.demand.min(claim.limit))).collect();
    let mut shares: Vec<f64> =
        claims.iter().zip(&caps).map(|(claim, cap)| f64::from(claim.reserved).min(*cap)).collect();
    let mut left = f64::from(capacity) - shares.iter().sum::<f64>();

    let mut priorities: Vec<i32> = claims.iter().map(|claim| claim.priority).collect();
    priorities.sort_unstable_by(|a, b| b.cmp(a));
    priorities.dedup();
    for priority in priorities {
        // Water-filling: at most one round per class, since each round
        // either spends what is left or fills at least one class.
        for _ in 0..claims.len() {
            if left <= 1e-9 {
                return shares;
            }
            let open: Vec<usize> = (0..claims.len())
                .filter(|&i| claims[i].priority == priority && shares[i] + 1e-9 < caps[i])
                .collect();
            if open.is_empty() {
                break;
            }
            let weights: f64 = open.iter().map(|&i| f64::from(claims[i].weight)).sum();
            let per_weight = open
                .iter()
                .map(|&i| (caps[i] - shares[i]) / f64::from(claims[i].weight))
                .fold(left / weights, f64::min);
            for &i in &open {
                let grant = per_weight * f64::from(claims[i].weight);
                shares[i] += grant;
                left -= grant;
            }
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(demand: u32, weight: u32, priority: i32) -> Claim {
        Claim { demand, reserved: 0, limit: u32::MAX, weight, priority }
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn equal_weights_split_evenly() {
        assert_close(&fair_shares(100, &[claim(80, 1, 0), claim(80, 1, 0)]), &[50.0, 50.0]);
    }

    #[test]
    fn unused_share_goes_to_others() {
        assert_close(&fair_shares(100, &[claim(20, 1, 0), claim(200, 1, 0)]), &[20.0, 80.0]);
    }

    #[test]
    fn weights_scale_shares() {
        assert_close(&fair_shares(90, &[claim(100, 2, 0), claim(100, 1, 0)]), &[60.0, 30.0]);
    }

    #[test]
    fn higher_priority_fills_first() {
        assert_close(&fair_shares(100, &[claim(70, 1, 0), claim(60, 1, 5)]), &[40.0, 60.0]);
    }

    #[test]
    fn reservation_beats_priority() {
        let mut low = claim(70, 1, 0);
        low.reserved = 50;
        assert_close(&fair_shares(100, &[low, claim(90, 1, 5)]), &[50.0, 50.0]);
    }

    #[test]
    fn limit_caps_share() {
        let mut capped = claim(100, 1, 0);
        capped.limit = 10;
        assert_close(&fair_shares(100, &[capped, claim(100, 1, 0)]), &[10.0, 90.0]);
    }
}
