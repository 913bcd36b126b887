// The redis engine's payload and result bytes: the process engine's wire
// frames (src/process/wire.hpp), framed and unframed here. Any thread.
#include "redis/payload.hpp"

#include <optional>
#include <stdexcept>
#include <utility>

#include "webexec/errors.hpp"

namespace webexec::redis {
namespace {

namespace wire = process::detail;

/// The one whole frame `bytes` must be.
wire::Frame only_frame(wire::FrameReader& reader, std::string_view bytes, const char* what) {
  reader.feed(bytes);
  std::optional<wire::Frame> frame = reader.next();
  if (!frame) {
    throw std::invalid_argument(
        std::string("a redis ") + what + " is not one whole frame" +
        (reader.error().empty() ? std::string(" (too short)") : ": " + reader.error()));
  }
  const std::size_t used = wire::kHeaderSize + frame->body.size();
  if (used != bytes.size()) {
    throw std::invalid_argument(std::string("a redis ") + what + " has " +
                                std::to_string(bytes.size() - used) + " bytes after its frame");
  }
  return *frame;
}

}  // namespace

std::string encode_job_payload(nlohmann::json request, std::size_t max_payload) {
  request["limit"] = static_cast<std::uint64_t>(max_payload);
  std::string body = wire::encode_body(request);
  if (body.size() > max_payload) {
    throw PayloadTooLargeError(
        "job '" + request.value("job", std::string()) + "' is " + std::to_string(body.size()) +
        " bytes encoded, over EXECUTOR_MAX_PAYLOAD = " + std::to_string(max_payload) + " bytes");
  }
  std::string out;
  wire::append_frame(out, wire::Kind::job, 0, 0, body);
  return out;
}

wire::JobMessage decode_job_payload(std::string_view payload, std::size_t max_payload) {
  wire::FrameReader reader(max_payload);
  const wire::Frame frame = only_frame(reader, payload, "job payload");
  if (frame.kind != wire::Kind::job) {
    throw std::invalid_argument("a redis job payload is a frame of kind " +
                                std::to_string(static_cast<int>(frame.kind)) + ", not a job");
  }
  return wire::decode_job_message(frame.body);
}

std::string encode_result(const nlohmann::json& value) {
  std::string out;
  wire::append_frame(out, wire::Kind::result, 0, 0, wire::encode_body(value));
  return out;
}

std::string encode_error(std::string_view type, std::string_view message) {
  std::string out;
  wire::append_frame(
      out, wire::Kind::error, 0, 0,
      wire::encode_body({{"type", std::string(type)}, {"message", std::string(message)}}));
  return out;
}

wire::WorkerMessage decode_outcome(std::string_view bytes, std::size_t max_payload) {
  wire::FrameReader reader(max_payload);
  const wire::Frame frame = only_frame(reader, bytes, "job result");
  if (frame.kind != wire::Kind::result && frame.kind != wire::Kind::error) {
    throw std::invalid_argument("a redis job result is a frame of kind " +
                                std::to_string(static_cast<int>(frame.kind)));
  }
  return wire::decode_worker_message(frame);
}

}  // namespace webexec::redis
