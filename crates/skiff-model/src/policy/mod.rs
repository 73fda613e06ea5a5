//! Namespace admission policy (SEMANTICS A2–A4): what kube-apiserver's LimitRanger and
//! ResourceQuota admission plugins do to a Pod being created, as pure functions of the pod and
//! the namespace's LimitRange / ResourceQuota objects. The API server reads those objects from
//! its store and turns a refusal into `403 pods "x" is forbidden: <message>`.
//!
//! Upstream maps are iterated in Go's random order where the plugins build their messages
//! (`for k, v := range limit.Min`); skiff uses resource-name order, which is one of the orders
//! kube-apiserver may print.

pub mod limit_range;
pub mod quota;

/// `utilerrors.NewAggregate(errs).Error()`: one message as is; several, de-duplicated, as
/// `[a, b]` (a single distinct message keeps no brackets).
pub fn aggregate_message(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_joins_and_dedups_like_utilerrors() {
        assert_eq!(aggregate_message(&[]), "");
        assert_eq!(aggregate_message(&["a".into()]), "a");
        assert_eq!(aggregate_message(&["a".into(), "a".into()]), "a");
        assert_eq!(
            aggregate_message(&["a".into(), "b".into(), "a".into()]),
            "[a, b]"
        );
    }
}
