//! Query parameters as the handlers read them: decoded once by [`crate::query`], a blank value
//! counted as absent, and a value that is not UTF-8 once decoded refused with a 400 that names
//! the parameter.

use super::{ApiError, ApiResult};
use crate::query;
use crate::users::MAX_LIST_LIMIT;

/// A parameter already read out of the query ([`query::params`]); `None` when absent or blank.
/// Undecodable values are refused with `invalid_code`.
pub fn optional_value(
    value: Option<Result<String, ()>>,
    name: &'static str,
    invalid_code: &'static str,
) -> ApiResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(Ok(v)) if v.is_empty() => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(())) => Err(ApiError::bad_request(
            invalid_code,
            format!("the query parameter `{name}` is not valid UTF-8 once percent-decoded"),
        )),
    }
}

/// [`optional_value`] for a parameter that must be given: absent or blank is
/// `missing_parameter`.
pub fn required_value(
    value: Option<Result<String, ()>>,
    name: &'static str,
    invalid_code: &'static str,
) -> ApiResult<String> {
    optional_value(value, name, invalid_code)?.ok_or(ApiError::MissingParameter(name))
}

/// The parameter `name` of the raw query `raw`; `None` when absent or blank, undecodable values
/// refused as `invalid_parameter`.
pub fn optional(raw: Option<&str>, name: &'static str) -> ApiResult<Option<String>> {
    optional_value(query::param(raw, name), name, "invalid_parameter")
}

/// The parameter `name` of the raw query `raw`, which must be given; undecodable values are
/// refused with `invalid_code`.
pub fn required(
    raw: Option<&str>,
    name: &'static str,
    invalid_code: &'static str,
) -> ApiResult<String> {
    required_value(query::param(raw, name), name, invalid_code)
}

/// The `limit` of a paged list: `default` when absent; a whole number from 1 (larger values are
/// capped at [`MAX_LIST_LIMIT`]), else 400 `invalid_parameter`.
pub fn page_limit(raw: Option<&str>, default: u32) -> ApiResult<u32> {
    let Some(l) = optional(raw, "limit")? else {
        return Ok(default);
    };
    match l.trim().parse::<u64>() {
        Ok(n) if n >= 1 => {
            Ok(u32::try_from(n.min(u64::from(MAX_LIST_LIMIT))).unwrap_or(MAX_LIST_LIMIT))
        }
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "limit must be a whole number from 1 to {MAX_LIST_LIMIT} (larger values are \
                 capped), got {l:?}"
            ),
        )),
    }
}
