//! Validation of the purchase body, with the seed's (class-validator) wording.

use domain::{UserId, UserIdError};
use serde_json::Value;

/// The only property a purchase body may have.
const USER_ID: &str = "userId";

/// Checks `{ "userId": "<id>" }` and lists every problem found.
pub fn purchase_body(body: &Value) -> Result<UserId, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["request body must be a JSON object".to_owned()]);
    };
    let mut problems: Vec<String> = object
        .keys()
        .filter(|key| key.as_str() != USER_ID)
        .map(|key| format!("property {key} should not exist"))
        .collect();
    let user = match object.get(USER_ID) {
        None | Some(Value::Null) => {
            problems.push("userId must be a string".to_owned());
            problems.push(UserIdError::Empty.to_string());
            None
        }
        Some(Value::String(raw)) => match UserId::parse(raw) {
            Ok(user) => Some(user),
            Err(problem) => {
                problems.push(problem.to_string());
                None
            }
        },
        Some(_) => {
            problems.push("userId must be a string".to_owned());
            None
        }
    };
    match user {
        Some(user) if problems.is_empty() => Ok(user),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_body_gives_the_user() {
        assert_eq!(
            purchase_body(&json!({"userId": "user-42"})).map(|u| u.to_string()),
            Ok("user-42".to_owned())
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let problems = purchase_body(&json!({"userId": "", "hack": 1})).expect_err("invalid");
        assert_eq!(
            problems,
            vec![
                "property hack should not exist",
                "userId should not be empty"
            ]
        );
    }

    #[test]
    fn missing_or_non_string_user_ids_are_refused() {
        assert_eq!(
            purchase_body(&json!({})),
            Err(vec![
                "userId must be a string".to_owned(),
                "userId should not be empty".to_owned()
            ])
        );
        assert_eq!(
            purchase_body(&json!({"userId": 42})),
            Err(vec!["userId must be a string".to_owned()])
        );
        assert!(purchase_body(&json!(["userId"])).is_err());
        assert!(purchase_body(&json!("user")).is_err());
    }
}
