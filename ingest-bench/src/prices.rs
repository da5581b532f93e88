//! AWS's published prices (us-east-1, on-demand, no free tier) the cost model uses, in one
//! table with their sources.

use crate::report::Table;

/// When the prices below were read from their pages.
pub const READ_ON: &str = "2026-12-02";

/// One published price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// What is charged.
    pub item: &'static str,
    /// Dollars per `per` units.
    pub dollars: f64,
    /// How many units the price is for.
    pub per: f64,
    /// The unit.
    pub unit: &'static str,
    /// The page it is published on.
    pub source: &'static str,
}

impl Price {
    /// Dollars for `quantity` units.
    pub fn cost(&self, quantity: f64) -> f64 {
        self.dollars * quantity / self.per
    }
}

const SFN: &str = "https://aws.amazon.com/step-functions/pricing/";
const LAMBDA: &str = "https://aws.amazon.com/lambda/pricing/";
const S3: &str = "https://aws.amazon.com/s3/pricing/";

/// Step Functions Standard: per state transition (retries included).
pub const STANDARD_TRANSITION: Price = Price {
    item: "Step Functions Standard: state transitions",
    dollars: 0.025,
    per: 1_000.0,
    unit: "transitions",
    source: SFN,
};
/// Step Functions Express: per execution started.
pub const EXPRESS_REQUEST: Price = Price {
    item: "Step Functions Express: requests (executions started)",
    dollars: 1.00,
    per: 1_000_000.0,
    unit: "requests",
    source: SFN,
};
/// Step Functions Express: duration (first 1,000 GB-hours a month: $0.06 per GB-hour).
pub const EXPRESS_GB_SECOND: Price = Price {
    item: "Step Functions Express: duration, rounded up to 100 ms, memory in 64 MB chunks",
    dollars: 0.000_016_67,
    per: 1.0,
    unit: "GB-seconds",
    source: SFN,
};
/// Lambda: per invocation, either architecture.
pub const LAMBDA_REQUEST: Price = Price {
    item: "Lambda: requests",
    dollars: 0.20,
    per: 1_000_000.0,
    unit: "requests",
    source: LAMBDA,
};
/// Lambda on arm64 (the template's architecture): duration, first 7.5 billion GB-s a month,
/// billed in 1 ms increments.
pub const LAMBDA_ARM_GB_SECOND: Price = Price {
    item: "Lambda arm64: duration, rounded up to 1 ms",
    dollars: 0.000_013_333_4,
    per: 1.0,
    unit: "GB-seconds",
    source: LAMBDA,
};
/// S3 Standard: PUT, COPY, POST and LIST requests.
pub const S3_PUT_LIST: Price = Price {
    item: "S3 Standard: PUT, COPY, POST, LIST requests",
    dollars: 0.005,
    per: 1_000.0,
    unit: "requests",
    source: S3,
};
/// S3 Standard: GET, HEAD and other read requests.
pub const S3_GET: Price = Price {
    item: "S3 Standard: GET, SELECT and all other requests (HEAD included)",
    dollars: 0.0004,
    per: 1_000.0,
    unit: "requests",
    source: S3,
};

/// Every price the model uses.
pub const ALL: [Price; 7] = [
    STANDARD_TRANSITION,
    EXPRESS_REQUEST,
    EXPRESS_GB_SECOND,
    LAMBDA_REQUEST,
    LAMBDA_ARM_GB_SECOND,
    S3_PUT_LIST,
    S3_GET,
];

/// Express duration is billed in steps of this many milliseconds.
pub const EXPRESS_STEP_MS: f64 = 100.0;
/// Express memory is billed in chunks of this many MB (64 MB at least).
pub const EXPRESS_CHUNK_MB: f64 = 64.0;
/// Lambda duration is billed in steps of this many milliseconds.
pub const LAMBDA_STEP_MS: f64 = 1.0;

/// The template's `MemorySize` defaults (template.yaml), in MB, by function.
pub fn memory_mb(function: &str) -> f64 {
    match function {
        "launcher" | "validator" => 256.0,
        // The worker and the IoT Analytics-compatible service (ServiceMemorySize).
        _ => 512.0,
    }
}

/// The prices as a Markdown table.
pub fn table() -> Table {
    let mut table = Table::new(&["item (us-east-1)", "price", "source"]);
    for price in ALL {
        table.row(vec![
            price.item.to_owned(),
            format!(
                "${} per {} {}",
                price.dollars,
                crate::report::thousands(price.per),
                price.unit
            ),
            format!("{} (read {READ_ON})", price.source),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_scales_linearly_with_quantity() {
        assert!((STANDARD_TRANSITION.cost(1_000.0) - 0.025).abs() < 1e-12);
        assert!((EXPRESS_REQUEST.cost(2_000_000.0) - 2.0).abs() < 1e-12);
        assert!((S3_GET.cost(500.0) - 0.0002).abs() < 1e-12);
    }

    #[test]
    fn the_template_gives_the_worker_512_mb_and_the_others_256() {
        assert_eq!(memory_mb("worker"), 512.0);
        assert_eq!(memory_mb("launcher"), 256.0);
        assert_eq!(memory_mb("validator"), 256.0);
    }
}
