//! Column names to field positions.

use tally_protocol::{ErrorKind, QuerySpec};

use crate::TaskFailure;

/// The fields a query reads from each record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Columns {
    /// Field index of each key column.
    pub(crate) key_fields: Vec<usize>,
    /// Field index of each value column (`QuerySpec::value_columns` order).
    pub(crate) value_fields: Vec<usize>,
    /// Fields a record must have: one past the largest index above.
    pub(crate) wanted: usize,
}

/// Names listed in an error message, at most.
const LISTED: usize = 40;

impl Columns {
    /// Resolves the query's key and value columns among `names`. `whence`
    /// says where the names came from, for the error message
    /// (`` the header of `data.csv` ``).
    pub(crate) fn resolve(
        query: &QuerySpec,
        names: &[String],
        whence: &str,
    ) -> Result<Columns, TaskFailure> {
        let find = |column: &str| {
            names
                .iter()
                .position(|n| n == column)
                .ok_or_else(|| unknown(column, names, whence))
        };
        let key_fields = query
            .group_by
            .iter()
            .map(|c| find(c))
            .collect::<Result<Vec<_>, _>>()?;
        let value_fields = query
            .value_columns()
            .into_iter()
            .map(find)
            .collect::<Result<Vec<_>, _>>()?;
        let wanted = key_fields
            .iter()
            .chain(&value_fields)
            .map(|&i| i + 1)
            .max()
            .unwrap_or(0);
        Ok(Columns {
            key_fields,
            value_fields,
            wanted,
        })
    }
}

fn unknown(column: &str, names: &[String], whence: &str) -> TaskFailure {
    let mut listed: Vec<String> = names
        .iter()
        .take(LISTED)
        .map(|n| format!("`{n}`"))
        .collect();
    if names.len() > LISTED {
        listed.push(format!("and {} more", names.len() - LISTED));
    }
    let available = if names.is_empty() {
        "none".to_string()
    } else {
        listed.join(", ")
    };
    TaskFailure::new(
        ErrorKind::Query,
        format!("column `{column}` is not in {whence}; available columns: {available}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_protocol::{AggFunc, Aggregate, InputFormat, OnError};

    fn query(by: &[&str], values: &[&str]) -> QuerySpec {
        QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter: b',',
                quote: None,
                header: true,
                columns: vec![],
                format: Default::default(),
            },
            group_by: by.iter().map(|s| s.to_string()).collect(),
            aggregates: values
                .iter()
                .map(|c| Aggregate {
                    func: AggFunc::Sum,
                    column: Some(c.to_string()),
                })
                .collect(),
            on_error: OnError::Fail,
            panes: None,
        }
    }

    #[test]
    fn resolves_and_names_unknown() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let c = Columns::resolve(&query(&["c"], &["a", "a"]), &names, "x").unwrap();
        assert_eq!(c.key_fields, [2]);
        assert_eq!(c.value_fields, [0]);
        assert_eq!(c.wanted, 3);
        let e =
            Columns::resolve(&query(&["zz"], &[]), &names, "the header of `f.csv`").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Query);
        assert_eq!(
            e.message,
            "column `zz` is not in the header of `f.csv`; available columns: `a`, `b`, `c`"
        );
        let none = Columns::resolve(&query(&[], &[]), &[], "x").unwrap();
        assert_eq!(none.wanted, 0);
    }
}
