//! The cost model: a run's counts per object, priced line by line with AWS's published
//! prices, for any number of objects.

use std::time::Duration;

use crate::prices::{self, Price};

/// What a run used, per object ingested (means over the run).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerObject {
    /// Standard state transitions (states entered, parent and Standard children).
    pub transitions: f64,
    /// Express executions started.
    pub express_requests: f64,
    /// Express GB-seconds, as billed (100 ms steps, 64 MB chunks).
    pub express_gb_seconds: f64,
    /// Invocations of the workflow's functions.
    pub lambda_requests: f64,
    /// The workflow's functions' GB-seconds, as billed (1 ms steps, the template's memory).
    pub lambda_gb_seconds: f64,
    /// S3 PUT, COPY, POST and LIST requests of the workflow.
    pub s3_put_list: f64,
    /// S3 GET, HEAD and other requests of the workflow.
    pub s3_get: f64,
    /// Invocations of the IoT Analytics-compatible service's function (its BatchPutMessage
    /// requests).
    pub service_requests: f64,
    /// S3 PUT, COPY, POST and LIST requests of the service (its storage).
    pub service_s3_put_list: f64,
    /// S3 GET, HEAD and other requests of the service.
    pub service_s3_get: f64,
}

/// One priced line.
#[derive(Debug, Clone, PartialEq)]
pub struct CostLine {
    /// Whether the line is the IoT Analytics-compatible service's (else the workflow's).
    pub service: bool,
    /// The price applied.
    pub price: Price,
    /// Units for all the objects.
    pub quantity: f64,
    /// `price` × `quantity`.
    pub dollars: f64,
}

/// The cost of `objects` objects, line by line, each line the per-object figure × objects.
pub fn lines(per: &PerObject, objects: f64) -> Vec<CostLine> {
    let line = |service: bool, price: Price, per_object: f64| {
        let quantity = per_object * objects;
        CostLine {
            service,
            price,
            quantity,
            dollars: price.cost(quantity),
        }
    };
    vec![
        line(false, prices::STANDARD_TRANSITION, per.transitions),
        line(false, prices::EXPRESS_REQUEST, per.express_requests),
        line(false, prices::EXPRESS_GB_SECOND, per.express_gb_seconds),
        line(false, prices::LAMBDA_REQUEST, per.lambda_requests),
        line(false, prices::LAMBDA_ARM_GB_SECOND, per.lambda_gb_seconds),
        line(false, prices::S3_PUT_LIST, per.s3_put_list),
        line(false, prices::S3_GET, per.s3_get),
        line(true, prices::LAMBDA_REQUEST, per.service_requests),
        line(true, prices::S3_PUT_LIST, per.service_s3_put_list),
        line(true, prices::S3_GET, per.service_s3_get),
    ]
}

/// The sum of the lines (adding 0.0 turns an empty sum's -0.0 into 0.0).
pub fn total(lines: &[CostLine]) -> f64 {
    lines.iter().map(|l| l.dollars).sum::<f64>() + 0.0
}

/// The sum of the workflow's lines: Step Functions, its functions and its S3 requests,
/// without the IoT Analytics-compatible service.
pub fn workflow_total(lines: &[CostLine]) -> f64 {
    lines
        .iter()
        .filter(|l| !l.service)
        .map(|l| l.dollars)
        .sum::<f64>()
        + 0.0
}

/// How many times cheaper `after` is than `before` (infinite when `after` costs nothing).
pub fn ratio(before: f64, after: f64) -> f64 {
    if after > 0.0 {
        before / after
    } else {
        f64::INFINITY
    }
}

/// Billed GB-seconds of invocations: each duration rounded up to `step_ms`, times its memory
/// rounded up to `chunk_mb` (1 for none), in GB of 1,024 MB.
pub fn billed_gb_seconds<'a>(
    invocations: impl IntoIterator<Item = (&'a str, Duration)>,
    step_ms: f64,
    chunk_mb: f64,
    memory_mb: impl Fn(&str) -> f64,
) -> f64 {
    invocations
        .into_iter()
        .map(|(function, duration)| {
            let ms = duration.as_secs_f64() * 1000.0;
            let billed_ms = (ms / step_ms).ceil().max(1.0) * step_ms;
            let mb = (memory_mb(function) / chunk_mb).ceil() * chunk_mb;
            billed_ms / 1000.0 * mb / 1024.0
        })
        .sum::<f64>()
        + 0.0
}

/// Dollars with enough digits for a cent's fraction.
pub fn dollars(value: f64) -> String {
    if value >= 100.0 {
        format!("${value:.2}")
    } else if value >= 0.01 {
        format!("${value:.4}")
    } else {
        format!("${value:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn lambda_duration_is_billed_by_the_started_millisecond_at_the_function_memory() {
        let gb_s = billed_gb_seconds(
            [
                ("worker", Duration::from_micros(1_500)),
                ("launcher", ms(1000)),
            ],
            prices::LAMBDA_STEP_MS,
            1.0,
            prices::memory_mb,
        );
        // 2 ms at 0.5 GB, 1 s at 0.25 GB.
        assert!((gb_s - (0.002 * 0.5 + 0.25)).abs() < 1e-12, "{gb_s}");
    }

    #[test]
    fn express_duration_is_billed_by_100_ms_and_64_mb_chunks() {
        let gb_s = billed_gb_seconds(
            [("child", ms(30)), ("child", ms(101))],
            prices::EXPRESS_STEP_MS,
            prices::EXPRESS_CHUNK_MB,
            |_| 1.0,
        );
        // 100 ms + 200 ms at 64 MB.
        assert!((gb_s - 0.3 * 64.0 / 1024.0).abs() < 1e-12, "{gb_s}");
    }

    #[test]
    fn costs_scale_linearly_with_the_number_of_objects() {
        let per = PerObject {
            transitions: 6.0,
            lambda_requests: 1.0,
            s3_get: 2.0,
            ..PerObject::default()
        };
        let ten = total(&lines(&per, 10.0));
        let thousand = total(&lines(&per, 1_000.0));
        assert!((thousand - 100.0 * ten).abs() < 1e-12);
        // 6,000 transitions, 1,000 requests, 2,000 GETs.
        let expected = 6.0 * 0.025 + 1_000.0 * 0.2 / 1e6 + 2.0 * 0.0004;
        assert!((thousand - expected).abs() < 1e-12, "{thousand}");
    }

    #[test]
    fn service_invocations_are_priced_as_lambda_requests() {
        let per = PerObject {
            service_requests: 4.0,
            ..PerObject::default()
        };
        let priced = lines(&per, 1_000_000.0);
        let lambda = priced
            .iter()
            .find(|l| l.service && l.price == prices::LAMBDA_REQUEST)
            .unwrap();
        assert!((lambda.dollars - 0.8).abs() < 1e-9);
        assert!((total(&priced) - 0.8).abs() < 1e-9);
        assert_eq!(workflow_total(&priced), 0.0);
    }

    #[test]
    fn nothing_costs_zero_dollars_not_minus_zero() {
        let nothing = lines(&PerObject::default(), 1_000.0);
        assert!(total(&nothing).is_sign_positive());
        let none: [(&str, Duration); 0] = [];
        assert!(billed_gb_seconds(none, 100.0, 64.0, |_| 64.0).is_sign_positive());
    }

    #[test]
    fn the_ratio_says_how_many_times_cheaper_after_is() {
        assert!((ratio(25.0, 1.0) - 25.0).abs() < 1e-12);
        assert!(ratio(1.0, 0.0).is_infinite());
    }

    #[test]
    fn dollars_keep_the_digits_that_matter() {
        assert_eq!(dollars(123.456), "$123.46");
        assert_eq!(dollars(0.5), "$0.5000");
        assert_eq!(dollars(0.000_12), "$0.000120");
    }
}
