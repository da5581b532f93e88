//! `deltaTime` query filters: a dataset content sees only the datastore messages whose
//! `timeExpression` falls in the window since the previous content, `[previous end, now −
//! offsetSeconds)` (from the beginning the first time). The dataset's SQL is rewritten so that
//! each datastore it reads becomes `(SELECT * FROM ds WHERE window) AS ds`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Query, Statement, TableFactor, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde_json::Value;

use crate::error::Error;

/// A dataset's `deltaTime` filter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaTime {
    /// Seconds of in-flight lag the window's end leaves out.
    pub offset_seconds: i64,
    /// SQL giving a message's time (a timestamp, e.g. `from_unixtime(time)`).
    pub time_expression: String,
}

/// The `deltaTime` of a dataset's query action, if it has one.
pub fn delta_time(actions: &Value) -> Option<DeltaTime> {
    actions.as_array()?.iter().find_map(|a| {
        a.get("queryAction")?
            .get("filters")?
            .as_array()?
            .iter()
            .find_map(|f| {
                let d = f.get("deltaTime")?;
                Some(DeltaTime {
                    offset_seconds: d.get("offsetSeconds")?.as_i64()?,
                    time_expression: d.get("timeExpression")?.as_str()?.to_owned(),
                })
            })
    })
}

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("The deltaTime filter cannot be applied: {why}"))
}

struct Restrict<'a> {
    datastores: &'a [String],
    condition: String,
    error: Option<Error>,
}

impl VisitorMut for Restrict<'_> {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let table = name.to_string();
        let bare = table.rsplit('.').next().unwrap_or(&table).trim_matches('"');
        if !self.datastores.iter().any(|d| d.eq_ignore_ascii_case(bare)) {
            return ControlFlow::Continue(());
        }
        let alias = alias
            .as_ref()
            .map_or_else(|| bare.to_owned(), |a| a.name.to_string());
        // Parsed as a whole query so the derived table and its alias come from the parser.
        let text = format!(
            "SELECT * FROM (SELECT * FROM {table} WHERE {}) AS {alias}",
            self.condition
        );
        match parse_query(&text).map(|q| *q.body) {
            Ok(datafusion::sql::sqlparser::ast::SetExpr::Select(mut select)) => {
                if let Some(from) = select.from.pop() {
                    *factor = from.relation;
                }
            }
            Ok(_) => {}
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

fn parse_query(sql: &str) -> Result<Query, Error> {
    let mut statements = Parser::parse_sql(&GenericDialect, sql).map_err(invalid)?;
    match statements.pop() {
        Some(Statement::Query(q)) if statements.is_empty() => Ok(*q),
        _ => Err(invalid("the dataset's SQL is not one query")),
    }
}

/// `sql` with every datastore it reads limited to the messages whose time expression falls in
/// `[start, end)` (seconds since the epoch; no start means from the beginning).
pub fn restrict(
    sql: &str,
    datastores: &[String],
    delta: &DeltaTime,
    start: Option<f64>,
    end: f64,
) -> Result<String, Error> {
    let time = &delta.time_expression;
    let mut condition = format!("({time}) < from_unixtime({})", end.floor() as i64);
    if let Some(start) = start {
        condition = format!(
            "({time}) >= from_unixtime({}) AND {condition}",
            start.floor() as i64
        );
    }
    let mut statements = Parser::parse_sql(&GenericDialect, sql).map_err(invalid)?;
    let mut visitor = Restrict {
        datastores,
        condition,
        error: None,
    };
    let _ = statements.visit(&mut visitor);
    if let Some(e) = visitor.error {
        return Err(e);
    }
    Ok(statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delta() -> DeltaTime {
        DeltaTime {
            offset_seconds: 60,
            time_expression: "from_unixtime(time)".into(),
        }
    }

    #[test]
    fn the_filter_is_read_from_the_query_action() {
        let actions = json!([{"actionName": "a", "queryAction": {"sqlQuery": "select 1",
            "filters": [{"deltaTime": {"offsetSeconds": 60, "timeExpression": "from_unixtime(time)"}}]}}]);
        assert_eq!(delta_time(&actions), Some(delta()));
        assert_eq!(
            delta_time(&json!([{"queryAction": {"sqlQuery": "select 1"}}])),
            None
        );
    }

    #[test]
    fn each_datastore_read_becomes_a_windowed_subquery_under_its_name() {
        let ds = vec!["temps".to_owned()];
        let out = restrict(
            "SELECT count(*) FROM temps t JOIN other o ON t.a = o.a",
            &ds,
            &delta(),
            Some(100.0),
            200.5,
        )
        .unwrap();
        assert!(
            out.contains("(SELECT * FROM temps WHERE (from_unixtime(time)) >= from_unixtime(100) AND (from_unixtime(time)) < from_unixtime(200)) AS t"),
            "{out}"
        );
        assert!(
            out.contains("JOIN other AS o") || out.contains("JOIN other o"),
            "{out}"
        );
        let first = restrict("select * from TEMPS", &ds, &delta(), None, 200.0).unwrap();
        assert!(
            first.contains("WHERE (from_unixtime(time)) < from_unixtime(200)) AS TEMPS"),
            "{first}"
        );
    }
}
