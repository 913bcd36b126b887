// The process engine's wire format (private to webexec): versioned,
// length-prefixed, binary-safe frames, and the typed messages they carry.
//
// One frame, every integer little-endian:
//
//     offset  size  field
//     0       4     length L of the rest of the frame (12 <= L <= 12 + limit)
//     4       1     version (kWireVersion)
//     5       1     kind (Kind)
//     6       2     start slot (job frames; 0 otherwise)
//     8       8     job id
//     16      L-12  body: CBOR (RFC 8949) written by nlohmann::json::to_cbor,
//                   or empty for `started` and `skipped`
//
// CBOR text strings carry *bytes*: nlohmann writes a std::string as it is
// and reads it back as it is, without UTF-8 validation, so request bodies,
// header and query values, g strings, arguments, results and error messages
// cross intact whatever they hold (a reader in another language must read
// text strings as bytes). Bodies are decoded by a strict decoder of our own
// (wire.cpp's CborDecoder): strings are copied in one piece, every count is
// checked against the bytes left, nesting stops at 512 levels, and tags,
// undefined, reserved values and indefinite-length string chunks that are
// not definite strings of their type are refused. Everything that parses bytes from a peer lives in
// this file, so the fuzzer (fuzz/frame_fuzzer.cpp) covers it without
// sockets, and Step 5 can put the same frames into Redis.
//
// Thread safety: the free functions are reentrant; a FrameReader or
// OutBuffer belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webexec/context.hpp"

namespace webexec::process::detail {

inline constexpr std::uint8_t kWireVersion = 1;
inline constexpr std::size_t kHeaderSize = 16;
/// What the length field counts besides the body.
inline constexpr std::size_t kHeaderAfterLength = kHeaderSize - 4;
/// EXECUTOR_MAX_PAYLOAD's default: the largest encoded job (arguments and
/// context) or result.
inline constexpr std::uint32_t kDefaultMaxPayload = 64U << 20U;
/// EXECUTOR_MAX_PAYLOAD's maximum (1 GiB): the 32-bit length field never
/// gets near overflowing.
inline constexpr std::uint32_t kMaxPayloadCeiling = 1U << 30U;

enum class Kind : std::uint8_t {
  job = 1,       ///< host -> worker: {"job", "args", "ctx", "label", "progress", "limit"}
  started = 2,   ///< worker -> host: it won the start slot; empty body
  skipped = 3,   ///< worker -> host: the slot was cancelled or revoked; empty body
  progress = 4,  ///< worker -> host: {"fraction", "message", "done"?, "total"?}
  result = 5,    ///< worker -> host: the job's JSON result
  error = 6,     ///< worker -> host: {"type", "message"}
};

/// One decoded frame; `body` points into the reader's buffer and is valid
/// until the reader's next fill() or feed().
struct Frame {
  Kind kind = Kind::job;
  std::uint16_t slot = 0;
  std::uint64_t id = 0;
  std::string_view body;
};

/// CBOR of `value`, as bytes in a string. Throws `std::invalid_argument`
/// if arrays or maps nest deeper than decode_body reads (512 levels), else
/// what nlohmann throws (in practice only bad_alloc).
std::string encode_body(const nlohmann::json& value);

/// The value whose CBOR `body` is. Throws `std::invalid_argument` if it is
/// not exactly one well-formed CBOR value.
nlohmann::json decode_body(std::string_view body);

/// Appends one frame to `out`. Throws `std::length_error` if the body is
/// over kMaxPayloadCeiling.
void append_frame(std::string& out, Kind kind, std::uint64_t id, std::uint16_t slot,
                  std::string_view body);

/// The kHeaderSize bytes that precede a body of `body_size` bytes. Throws
/// `std::length_error` if the body is over kMaxPayloadCeiling.
std::string frame_header(Kind kind, std::uint64_t id, std::uint16_t slot, std::size_t body_size);

/// One frame whose body is the CBOR of a value: the bytes `head` and then
/// `tail`. `tail` is empty, or points into the encoded value (a text
/// string of kDirectTail bytes or more), whose bytes are then sent from
/// where they are instead of being copied.
struct OutFrame {
  std::string head;
  std::string_view tail;
  [[nodiscard]] std::size_t body_size() const noexcept {
    return head.size() + tail.size() - kHeaderSize;
  }
};
inline constexpr std::size_t kDirectTail = std::size_t{64} << 10U;

/// The frame whose body is the CBOR of `value`, encoded straight behind
/// the header; a long string's bytes stay in `value` (which must outlive
/// the frame). Throws what encode_body and append_frame throw.
OutFrame encode_frame(Kind kind, std::uint64_t id, const nlohmann::json& value);

/// Cuts a byte stream into frames. Not thread-safe.
class FrameReader {
 public:
  enum class Status { ok, eof, error };

  /// Frames whose body is over `max_body` bytes are refused (see error()).
  explicit FrameReader(std::size_t max_body) : max_body_(max_body) {}

  /// Reads what a non-blocking `fd` has, at most about `budget` bytes, or
  /// (blocking fd) whatever one read returns. `eof` on end of stream or a
  /// read error.
  Status fill(int fd, std::size_t budget);

  /// Appends bytes as if read (tests, the fuzzer).
  void feed(std::string_view bytes);

  /// The next complete frame, or nothing (more bytes needed, or the stream
  /// is broken: see error()).
  std::optional<Frame> next();

  /// Why the stream is unusable (empty while it is fine): a bad version or
  /// kind, a short length, or a body over the limit. Once set, next()
  /// returns nothing.
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

  /// The buffer's size in bytes (for tests: it stays near the largest
  /// frame plus one read, however many frames arrive at once).
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// The body size of the refused oversized frame, or 0.
  [[nodiscard]] std::uint64_t oversized() const noexcept { return oversized_; }

 private:
  /// Room for `n` more bytes at the end: moves the unread bytes to the
  /// front, or into a bigger buffer. Invalidates frames handed out.
  void reserve_more(std::size_t n);

  std::size_t max_body_;
  /// Bytes [start_, end_) of buffer_ are read but not yet handed out; the
  /// buffer is not zero-filled (a 1 MiB frame costs one copy from the
  /// kernel, nothing more) and is kept between frames up to kKeepCapacity.
  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_ = 0;
  std::size_t start_ = 0;
  std::size_t end_ = 0;
  std::string error_;
  std::uint64_t oversized_ = 0;
};

/// Bytes waiting to be written to a non-blocking socket: a queue of
/// chunks written with one sendmsg() per flush. Small frames are appended
/// to the last chunk; a large body is queued by reference (a shared_ptr,
/// the job keeps it for a retry elsewhere), so it is never copied in user
/// space. Not thread-safe.
class OutBuffer {
 public:
  enum class Status { done, pending, error };

  [[nodiscard]] bool empty() const noexcept { return chunks_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Queues one frame: `header` (frame_header()) and then `body`.
  void push(std::string_view header, const std::shared_ptr<const std::string>& body);

  /// Drops everything not yet written.
  void clear() noexcept;

  /// Writes as much as `fd` takes without blocking.
  Status flush(int fd);

 private:
  struct Chunk {
    std::string owned;                          ///< copied bytes (small frames)
    std::shared_ptr<const std::string> shared;  ///< or a large body, by reference
    [[nodiscard]] std::string_view bytes() const noexcept {
      return shared ? std::string_view(*shared) : std::string_view(owned);
    }
  };
  /// Appends copied bytes to the last chunk if it is an owned one.
  void append_owned(std::string_view bytes);

  std::deque<Chunk> chunks_;
  std::size_t start_ = 0;  ///< bytes of the front chunk already written
  std::size_t size_ = 0;   ///< bytes queued and not yet written
};

/// In a worker process (never the host: its allocator is the user's):
/// keeps payload-sized blocks in the heap (glibc's mmap threshold 32 MiB,
/// trim threshold 64 MiB) instead of mapping, zeroing and unmapping fresh
/// pages for every argument and result; that was half a worker's time with
/// 1 MiB payloads. A no-op without glibc.
void tune_worker_allocator() noexcept;

/// Writes all of `bytes` to a blocking `fd` (retries EINTR and partial
/// writes). Returns false if the peer is gone.
bool write_all(int fd, std::string_view bytes);

// ------------------------------------------------------------ messages

/// What a worker sent, decoded and type-checked.
struct WorkerMessage {
  Kind kind = Kind::result;
  std::uint64_t id = 0;
  nlohmann::json result;       ///< Kind::result
  std::string error_type;      ///< Kind::error
  std::string error_message;   ///< Kind::error
  webexec::Progress progress;  ///< Kind::progress
};

/// Decodes a frame from a worker. Throws `std::invalid_argument` naming
/// what is wrong (a host-only kind, a body that is not CBOR, a field of the
/// wrong type); never anything else but bad_alloc.
WorkerMessage decode_worker_message(const Frame& frame);

/// A job frame's fields, as the worker reads them.
struct JobMessage {
  std::string job;
  nlohmann::json args;
  nlohmann::json ctx;
  std::string label;
  bool progress = false;
  std::uint64_t limit = kDefaultMaxPayload;  ///< the largest result body to send
};

/// Decodes a job frame's body. Throws `std::invalid_argument` naming what
/// is wrong.
JobMessage decode_job_message(std::string_view body);

/// The body of a progress frame.
nlohmann::json progress_to_json(const webexec::Progress& progress);

}  // namespace webexec::process::detail
