//! Where a profile's time went, by phase, for the log.

use std::time::Instant;

/// Where a profile's time went: seconds per phase, summed over the phases of one name.
pub(crate) struct Phases {
    last: Instant,
    spent: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    pub(crate) fn new() -> Self {
        Self { last: Instant::now(), spent: Vec::new() }
    }

    /// Charges the time since the last call to `phase`.
    pub(crate) fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        match self.spent.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, t)) => *t += took,
            None => self.spent.push((phase, took)),
        }
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: f64 = self.spent.iter().map(|(_, t)| t.as_secs_f64()).sum();
        write!(f, "{total:.1} s")?;
        for (p, t) in &self.spent {
            write!(f, ", {p} {:.1} s", t.as_secs_f64())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_by_name() {
        let mut p = Phases::new();
        p.end("a");
        p.end("b");
        p.end("a");
        assert_eq!(p.spent.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["a", "b"]);
        assert!(p.to_string().starts_with("0.0 s, a 0.0 s, b 0.0 s"), "{p}");
    }
}
