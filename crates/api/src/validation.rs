//! Validation of the purchase body, with the seed's (class-validator) wording.

use domain::{UserId, UserIdError};
use serde_json::Value;

/// The only property a purchase body may have.
const USER_ID: &str = "userId";

/// Why a purchase body names no buyer.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Every problem found, in the seed's words (400).
    Problems(Vec<String>),
    /// The body names another buyer than the signed-in one (403).
    NotTheBuyer,
}

/// Checks `{ "userId": "<id>" }` and lists every problem found. With a
/// signed-in buyer (`BUYER_AUTH=jwt`) the property is optional and, when
/// given, must name that buyer.
pub fn purchase_body(body: &Value, signed_in: Option<&UserId>) -> Result<UserId, BodyError> {
    let Some(object) = body.as_object() else {
        return Err(BodyError::Problems(vec![
            "request body must be a JSON object".to_owned(),
        ]));
    };
    let mut problems: Vec<String> = object
        .keys()
        .filter(|key| key.as_str() != USER_ID)
        .map(|key| format!("property {key} should not exist"))
        .collect();
    let user = match (object.get(USER_ID), signed_in) {
        (None | Some(Value::Null), Some(buyer)) => Some(buyer.clone()),
        (None | Some(Value::Null), None) => {
            problems.push("userId must be a string".to_owned());
            problems.push(UserIdError::Empty.to_string());
            None
        }
        (Some(Value::String(raw)), _) => match UserId::parse(raw) {
            Ok(user) => Some(user),
            Err(problem) => {
                problems.push(problem.to_string());
                None
            }
        },
        (Some(_), _) => {
            problems.push("userId must be a string".to_owned());
            None
        }
    };
    match user {
        Some(user) if problems.is_empty() => match signed_in {
            Some(buyer) if *buyer != user => Err(BodyError::NotTheBuyer),
            _ => Ok(user),
        },
        _ => Err(BodyError::Problems(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_body_gives_the_user() {
        assert_eq!(
            purchase_body(&json!({"userId": "user-42"}), None).map(|u| u.to_string()),
            Ok("user-42".to_owned())
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let BodyError::Problems(problems) =
            purchase_body(&json!({"userId": "", "hack": 1}), None).expect_err("invalid")
        else {
            panic!("problems expected");
        };
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
            purchase_body(&json!({}), None),
            Err(BodyError::Problems(vec![
                "userId must be a string".to_owned(),
                "userId should not be empty".to_owned()
            ]))
        );
        assert_eq!(
            purchase_body(&json!({"userId": 42}), None),
            Err(BodyError::Problems(vec![
                "userId must be a string".to_owned()
            ]))
        );
        assert!(purchase_body(&json!(["userId"]), None).is_err());
        assert!(purchase_body(&json!("user"), None).is_err());
    }

    #[test]
    fn a_signed_in_buyer_may_leave_the_user_out_but_not_name_another() {
        let alice = UserId::parse("alice").expect("valid");
        let buyer = |body: Value| purchase_body(&body, Some(&alice));
        assert_eq!(buyer(json!({})), Ok(alice.clone()));
        assert_eq!(buyer(json!({"userId": null})), Ok(alice.clone()));
        assert_eq!(buyer(json!({"userId": "alice"})), Ok(alice.clone()));
        assert_eq!(buyer(json!({"userId": "bob"})), Err(BodyError::NotTheBuyer));
        assert_eq!(
            buyer(json!({"userId": "", "hack": 1})),
            Err(BodyError::Problems(vec![
                "property hack should not exist".to_owned(),
                "userId should not be empty".to_owned()
            ]))
        );
    }
}
