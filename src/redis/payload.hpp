/// What the redis engine stores as a job's payload and result (internal, not
/// API): the process engine's frames (src/process/wire.hpp), unchanged, so a
/// job crosses Redis exactly as it crosses a worker socket: versioned,
/// length-prefixed and binary safe, with CBOR bodies read by the same strict
/// decoder.
///
/// - payload = one `Kind::job` frame (id 0, slot 0) whose body is the CBOR of
///   {"job", "args", "ctx", "label", "progress", "limit"};
/// - result  = one `Kind::result` frame (the job's JSON result) or one
///   `Kind::error` frame ({"type", "message"}).
///
/// Thread safety: pure functions.
///
/// Example:
/// ```
/// std::string p = encode_job_payload({{"job", "add"}, {"args", {1, 2}}, {"ctx", ctx},
///                                     {"label", ""}, {"progress", false}}, max_payload);
/// auto job = decode_job_payload(p, max_payload);     // job.job == "add"
/// auto out = decode_outcome(encode_result(3), max);  // out.result == 3
/// ```
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "process/wire.hpp"

namespace webexec::redis {

/// The payload of `request` ({"job", "args", "ctx", "label", "progress"};
/// "limit" is set to `max_payload`, the largest result the worker may send).
/// Throws: `PayloadTooLargeError` if the encoded body is over `max_payload`
/// bytes, or what the encoder throws.
std::string encode_job_payload(nlohmann::json request, std::size_t max_payload);

/// The job a payload carries. Throws: `std::invalid_argument` naming what is
/// wrong (not one whole job frame, a body over `max_payload`, a bad field).
process::detail::JobMessage decode_job_payload(std::string_view payload, std::size_t max_payload);

/// A result frame for `value`.
std::string encode_result(const nlohmann::json& value);
/// An error frame {"type", "message"}.
std::string encode_error(std::string_view type, std::string_view message);

/// A result or error frame, decoded (`kind` says which). Throws:
/// `std::invalid_argument` for anything else.
process::detail::WorkerMessage decode_outcome(std::string_view bytes, std::size_t max_payload);

}  // namespace webexec::redis
