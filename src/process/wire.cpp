#include "process/wire.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace webexec::process::detail {
namespace {

void put_le(std::string& out, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFU));
}

std::uint64_t get_le(const char* p, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; ++i) {
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return value;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::job:
      return "job";
    case Kind::started:
      return "started";
    case Kind::skipped:
      return "skipped";
    case Kind::progress:
      return "progress";
    case Kind::result:
      return "result";
    case Kind::error:
      return "error";
  }
  return "unknown";
}

const nlohmann::json& field(const nlohmann::json& object, const char* name, const char* what) {
  const auto it = object.find(name);
  if (it == object.end()) {
    throw std::invalid_argument(std::string(what) + " has no field '" + name + "'");
  }
  return *it;
}

std::string string_field(const nlohmann::json& object, const char* name, const char* what) {
  const nlohmann::json& v = field(object, name, what);
  if (!v.is_string()) {
    throw std::invalid_argument(std::string(what) + " field '" + name + "' is a " + v.type_name() +
                                ", not a string");
  }
  return v.get<std::string>();
}

std::optional<std::int64_t> optional_int(const nlohmann::json& object, const char* name,
                                         const char* what) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer() &&
      !(it->is_number_unsigned() &&
        it->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))) {
    return it->get<std::int64_t>();
  }
  throw std::invalid_argument(std::string(what) + " field '" + name + "' is not a 64-bit integer");
}

/// Nesting beyond this is refused: nlohmann's CBOR reader recurses once
/// per level, so a peer could otherwise exhaust the stack.
constexpr std::size_t kMaxDepth = 512;

/// nlohmann's DOM builder, stopped at kMaxDepth and on the first error
/// (never throws for bad input).
class DepthLimitedSax {
 public:
  using json = nlohmann::json;
  explicit DepthLimitedSax(std::size_t body_size)
      : dom_(value_, /*allow_exceptions=*/false), body_size_(body_size) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return enter(n) && dom_.start_object(n); }
  bool key(json::string_t& v) { return dom_.key(v); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter(n) && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*ex*/) {
    failed_ = true;
    return false;
  }

  [[nodiscard]] bool failed() const noexcept { return failed_ || dom_.is_errored(); }
  [[nodiscard]] bool too_deep() const noexcept { return too_deep_; }
  json take() { return std::move(value_); }

 private:
  /// `n` elements declared (-1: indefinite). Each takes at least one byte,
  /// so more than the body holds is a lie (and nlohmann would throw).
  bool enter(std::size_t n) {
    if (n != static_cast<std::size_t>(-1) && n > body_size_) {
      failed_ = true;
      return false;
    }
    if (++depth_ > kMaxDepth) {
      too_deep_ = true;
      failed_ = true;
      return false;
    }
    return true;
  }

  json value_;
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::size_t body_size_;
  std::size_t depth_ = 0;
  bool failed_ = false;
  bool too_deep_ = false;
};

}  // namespace

std::string encode_body(const nlohmann::json& value) {
  std::string out;
  nlohmann::json::to_cbor(value, nlohmann::detail::output_adapter<char>(out));
  return out;
}

nlohmann::json decode_body(std::string_view body) {
  DepthLimitedSax sax(body.size());
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(body.begin(), body.end(), &sax,
                                   nlohmann::json::input_format_t::cbor, /*strict=*/true);
  } catch (const nlohmann::json::exception& e) {  // anything the guards above missed
    throw std::invalid_argument(std::string("the frame's body is not acceptable CBOR: ") +
                                e.what());
  }
  if (!ok || sax.failed()) {
    throw std::invalid_argument(sax.too_deep() ? "the frame's body nests deeper than " +
                                                     std::to_string(kMaxDepth) + " levels"
                                               : std::string("the frame's body is not well-formed "
                                                             "CBOR"));
  }
  return sax.take();
}

void append_frame(std::string& out, Kind kind, std::uint64_t id, std::uint16_t slot,
                  std::string_view body) {
  if (body.size() > kMaxPayloadCeiling) {
    throw std::length_error("a frame body of " + std::to_string(body.size()) +
                            " bytes is over the wire's ceiling of " +
                            std::to_string(kMaxPayloadCeiling) + " bytes");
  }
  out.reserve(out.size() + kHeaderSize + body.size());
  put_le(out, kHeaderAfterLength + body.size(), 4);
  out.push_back(static_cast<char>(kWireVersion));
  out.push_back(static_cast<char>(kind));
  put_le(out, slot, 2);
  put_le(out, id, 8);
  out.append(body);
}

// ------------------------------------------------------------ FrameReader

void FrameReader::compact() {
  if (start_ == 0) return;
  if (start_ == data_.size()) {
    data_.clear();
    start_ = 0;
  } else if (start_ >= data_.size() / 2) {
    data_.erase(0, start_);
    start_ = 0;
  }
}

FrameReader::Status FrameReader::fill(int fd, std::size_t budget) {
  compact();
  constexpr std::size_t kChunk = 256 << 10;
  std::size_t got = 0;
  for (;;) {
    const std::size_t old = data_.size();
    data_.resize(old + kChunk);
    const ssize_t n = ::read(fd, data_.data() + old, kChunk);
    data_.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      // A short read means the socket is drained for now; a blocking fd
      // must not be read again (it would block).
      if (static_cast<std::size_t>(n) < kChunk || got >= budget) return Status::ok;
      continue;
    }
    if (n == 0) return got > 0 ? Status::ok : Status::eof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::ok;
    return got > 0 ? Status::ok : Status::eof;
  }
}

void FrameReader::feed(std::string_view bytes) {
  compact();
  data_.append(bytes);
}

std::optional<Frame> FrameReader::next() {
  if (!error_.empty()) return std::nullopt;
  const std::size_t available = data_.size() - start_;
  if (available < 4) return std::nullopt;
  const char* p = data_.data() + start_;
  const std::uint64_t length = get_le(p, 4);
  if (length < kHeaderAfterLength) {
    error_ = "a frame length of " + std::to_string(length) + " is shorter than its header";
    return std::nullopt;
  }
  const std::uint64_t body_size = length - kHeaderAfterLength;
  if (body_size > max_body_) {
    oversized_ = body_size;
    error_ = "a frame of " + std::to_string(body_size) + " bytes is over the limit of " +
             std::to_string(max_body_) + " bytes";
    return std::nullopt;
  }
  if (available >= 5 && static_cast<std::uint8_t>(p[4]) != kWireVersion) {
    error_ = "a frame of wire version " + std::to_string(static_cast<std::uint8_t>(p[4])) +
             " (this is version " + std::to_string(kWireVersion) + ")";
    return std::nullopt;
  }
  const auto kind = available >= 6 ? static_cast<std::uint8_t>(p[5]) : std::uint8_t{1};
  if (kind < static_cast<std::uint8_t>(Kind::job) ||
      kind > static_cast<std::uint8_t>(Kind::error)) {
    error_ = "a frame of unknown kind " + std::to_string(kind);
    return std::nullopt;
  }
  // Compare without adding to the untrusted length (no overflow even with a
  // 32-bit size_t: length <= max_body_ + 12 here).
  if (available - 4 < length) return std::nullopt;
  Frame frame;
  frame.kind = static_cast<Kind>(kind);
  frame.slot = static_cast<std::uint16_t>(get_le(p + 6, 2));
  frame.id = get_le(p + 8, 8);
  frame.body = std::string_view(p + kHeaderSize, static_cast<std::size_t>(body_size));
  start_ += static_cast<std::size_t>(4 + length);
  return frame;
}

// ------------------------------------------------------------ OutBuffer

OutBuffer::Status OutBuffer::flush(int fd) {
  while (start_ < data_.size()) {
    const ssize_t n =
        ::send(fd, data_.data() + start_, data_.size() - start_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      start_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Keep the buffer from growing without bound at the front.
      if (start_ > (1U << 20U) && start_ >= data_.size() / 2) {
        data_.erase(0, start_);
        start_ = 0;
      }
      return Status::pending;
    }
    return Status::error;
  }
  data_.clear();
  start_ = 0;
  return Status::done;
}

bool write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// ------------------------------------------------------------ messages

WorkerMessage decode_worker_message(const Frame& frame) {
  WorkerMessage m;
  m.kind = frame.kind;
  m.id = frame.id;
  switch (frame.kind) {
    case Kind::started:
    case Kind::skipped:
      return m;
    case Kind::result:
      m.result = decode_body(frame.body);
      return m;
    case Kind::error: {
      const nlohmann::json body = decode_body(frame.body);
      if (!body.is_object()) throw std::invalid_argument("an error frame's body is not a map");
      m.error_type = string_field(body, "type", "an error frame");
      m.error_message = string_field(body, "message", "an error frame");
      return m;
    }
    case Kind::progress: {
      const nlohmann::json body = decode_body(frame.body);
      if (!body.is_object()) throw std::invalid_argument("a progress frame's body is not a map");
      const nlohmann::json& fraction = field(body, "fraction", "a progress frame");
      if (!fraction.is_number()) {
        throw std::invalid_argument("a progress frame's field 'fraction' is not a number");
      }
      m.progress.fraction = fraction.get<double>();
      if (!std::isfinite(m.progress.fraction)) m.progress.fraction = 0.0;
      m.progress.message = string_field(body, "message", "a progress frame");
      m.progress.done = optional_int(body, "done", "a progress frame");
      m.progress.total = optional_int(body, "total", "a progress frame");
      return m;
    }
    case Kind::job:
      break;
  }
  throw std::invalid_argument(std::string("a worker sent a '") + kind_name(frame.kind) +
                              "' frame, which only the host sends");
}

JobMessage decode_job_message(std::string_view body) {
  const nlohmann::json j = decode_body(body);
  if (!j.is_object()) throw std::invalid_argument("a job frame's body is not a map");
  JobMessage m;
  m.job = string_field(j, "job", "a job frame");
  m.label = string_field(j, "label", "a job frame");
  m.args = field(j, "args", "a job frame");
  m.ctx = field(j, "ctx", "a job frame");
  const nlohmann::json& progress = field(j, "progress", "a job frame");
  if (!progress.is_boolean()) throw std::invalid_argument("a job frame's 'progress' is no bool");
  m.progress = progress.get<bool>();
  const nlohmann::json& limit = field(j, "limit", "a job frame");
  if (!limit.is_number_unsigned()) throw std::invalid_argument("a job frame's 'limit' is no size");
  m.limit = limit.get<std::uint64_t>();
  return m;
}

nlohmann::json progress_to_json(const webexec::Progress& p) {
  nlohmann::json out = {{"fraction", p.fraction}, {"message", p.message}};
  if (p.done) out["done"] = *p.done;
  if (p.total) out["total"] = *p.total;
  return out;
}

}  // namespace webexec::process::detail
