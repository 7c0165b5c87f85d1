//! Validation of the purchase body, with the seed's (class-validator) wording.

use std::borrow::Cow;

use domain::{UserId, UserIdError};
use serde::Deserialize;
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
    /// The body is not JSON (400, "Request body is not valid JSON.").
    Malformed,
}

/// The body of nearly every purchase: `{"userId": "<id>"}` and nothing else.
/// The id is borrowed from the request's bytes unless it has escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Usual<'a> {
    #[serde(rename = "userId", borrow)]
    user_id: Cow<'a, str>,
}

/// [`purchase_body`] of a body's bytes. The usual body is read into
/// [`Usual`] (no `Value` map, no copy of the id); anything else (another
/// property, a missing or non-string `userId`, a repeated key, not an
/// object) into a `Value` and judged by [`purchase_body`], so every body
/// gets the answer it got when all were read as a `Value`.
pub fn purchase_json(body: &[u8], signed_in: Option<&UserId>) -> Result<UserId, BodyError> {
    // A derived struct also reads a JSON array (`["id"]`): only an object
    // may take the usual way.
    let object = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{');
    match serde_json::from_slice::<Usual<'_>>(body)
        .ok()
        .filter(|_| object)
    {
        Some(usual) => {
            let user = UserId::parse(&usual.user_id)
                .map_err(|problem| BodyError::Problems(vec![problem.to_string()]))?;
            match signed_in {
                Some(buyer) if *buyer != user => Err(BodyError::NotTheBuyer),
                _ => Ok(user),
            }
        }
        None => {
            let value: Value = serde_json::from_slice(body).map_err(|_| BodyError::Malformed)?;
            purchase_body(&value, signed_in)
        }
    }
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

    /// Every body is judged as when all were read as a `Value`.
    #[test]
    fn bytes_are_judged_as_their_value() {
        let alice = UserId::parse("alice").expect("valid");
        let bodies = [
            r#"{"userId":"user-42"}"#,
            r#" { "userId" : "user-42" } "#,
            r#"{"userId":"us\u0065r-42"}"#,
            r#"{"userId":"alice"}"#,
            r#"{"userId":"bob"}"#,
            r#"{"userId":""}"#,
            r#"{"userId":"   "}"#,
            r#"{"userId":"a\u0000b"}"#,
            r#"{"userId":null}"#,
            r#"{"userId":42}"#,
            r#"{"userId":"a","userId":"b"}"#,
            r#"{"userId":"u1","hack":true}"#,
            r#"{"hack":1}"#,
            r#"{}"#,
            r#"["userId"]"#,
            r#" ["user-42"]"#,
            r#""user""#,
        ];
        for body in bodies {
            let value: Value = serde_json::from_str(body).expect("json");
            for signed_in in [None, Some(&alice)] {
                assert_eq!(
                    purchase_json(body.as_bytes(), signed_in),
                    purchase_body(&value, signed_in),
                    "{body} {signed_in:?}"
                );
            }
        }
        let long = format!(r#"{{"userId":"{}"}}"#, "x".repeat(256));
        let value: Value = serde_json::from_str(&long).expect("json");
        assert_eq!(
            purchase_json(long.as_bytes(), None),
            purchase_body(&value, None)
        );
        assert_eq!(
            purchase_json(br#"{"userId":"user-42"}"#, None).map(|u| u.to_string()),
            Ok("user-42".to_owned())
        );
    }

    #[test]
    fn bytes_that_are_not_json_are_malformed() {
        for body in ["", "{not json", r#"{"userId":"a""#, r#"{"userId":"a"} x"#] {
            assert_eq!(
                purchase_json(body.as_bytes(), None),
                Err(BodyError::Malformed),
                "{body}"
            );
        }
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
