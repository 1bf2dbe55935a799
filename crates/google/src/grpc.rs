//! gRPC status codes, as Google APIs put them in error bodies (`status`)
//! and per-write statuses (Firestore's `batchWrite`).

use gluefleet_core::ErrorClass;

/// The class of a gRPC status code. 0 (OK) and 6 (ALREADY_EXISTS) mean
/// different things per call, so callers handle them first; here they count
/// as permanent.
pub fn class_of_grpc_code(code: i32) -> ErrorClass {
    match code {
        // CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNAVAILABLE
        1 | 2 | 4 | 10 | 13 | 14 => ErrorClass::Transient,
        // RESOURCE_EXHAUSTED: a quota.
        8 => ErrorClass::RateLimited,
        // UNAUTHENTICATED
        16 => ErrorClass::Unauthorized,
        // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
        // FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED, DATA_LOSS, ...
        _ => ErrorClass::Permanent,
    }
}

/// The code of a gRPC status name (`"ABORTED"` → 10).
pub fn code_of_name(name: &str) -> Option<i32> {
    (1..=16).find(|c| name_of_code(*c) == name)
}

/// The name of a gRPC status code (10 → `"ABORTED"`).
pub fn name_of_code(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(14, ErrorClass::Transient)]
    #[test_case(10, ErrorClass::Transient)]
    #[test_case(8, ErrorClass::RateLimited)]
    #[test_case(16, ErrorClass::Unauthorized)]
    #[test_case(3, ErrorClass::Permanent)]
    #[test_case(5, ErrorClass::Permanent)]
    #[test_case(9, ErrorClass::Permanent)]
    fn grpc_codes(code: i32, class: ErrorClass) {
        assert_eq!(class_of_grpc_code(code), class);
    }

    #[test]
    fn names_and_codes_round_trip() {
        for code in 1..=16 {
            assert_eq!(code_of_name(name_of_code(code)), Some(code));
        }
        assert_eq!(code_of_name("NOPE"), None);
    }
}
