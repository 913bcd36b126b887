// Length-prefixed JSON frames over a stream socket (private to webexec).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace webexec::process::detail {

/// Frames larger than this are garbage: the peer is killed, not trusted.
inline constexpr std::uint32_t kMaxFrame = 64U << 20U;

/// Writes one frame (blocking; retries on EINTR and partial writes).
/// Returns false if the peer is gone.
bool write_frame(int fd, const nlohmann::json& message);

/// Accumulates bytes read from a socket and cuts them into frames.
class FrameBuffer {
 public:
  enum class Status { ok, eof, garbage };

  /// Reads what is available (the fd may be blocking or not).
  Status fill(int fd);

  /// The next complete frame, if any. Sets `garbage` for an oversized
  /// frame or one that is not valid JSON.
  std::optional<nlohmann::json> next(bool& garbage);

 private:
  std::string data_;
  std::size_t start_ = 0;
};

/// Blocks until one whole frame arrives. Empty on EOF or garbage.
std::optional<nlohmann::json> read_frame(int fd, FrameBuffer& buffer, bool& garbage);

}  // namespace webexec::process::detail
