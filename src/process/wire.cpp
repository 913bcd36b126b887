#include "process/wire.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace webexec::process::detail {

bool write_frame(int fd, const nlohmann::json& message) {
  const std::string body = message.dump();
  const auto size = static_cast<std::uint32_t>(body.size());
  std::string frame(sizeof size, '\0');
  std::memcpy(frame.data(), &size, sizeof size);
  frame += body;
  std::size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A non-blocking socket whose buffer is full: wait for room.
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        ::select(fd + 1, nullptr, &set, nullptr, nullptr);
        continue;
      }
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

FrameBuffer::Status FrameBuffer::fill(int fd) {
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      data_.append(chunk, static_cast<std::size_t>(n));
      return Status::ok;
    }
    if (n == 0) return Status::eof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::ok;
    return Status::eof;
  }
}

std::optional<nlohmann::json> FrameBuffer::next(bool& garbage) {
  garbage = false;
  const std::size_t available = data_.size() - start_;
  std::uint32_t size = 0;
  if (available < sizeof size) return std::nullopt;
  std::memcpy(&size, data_.data() + start_, sizeof size);
  if (size > kMaxFrame) {
    garbage = true;
    return std::nullopt;
  }
  if (available < sizeof size + size) return std::nullopt;
  const std::size_t body = start_ + sizeof size;
  start_ = body + size;
  auto message = nlohmann::json::parse(data_.begin() + static_cast<std::ptrdiff_t>(body),
                                       data_.begin() + static_cast<std::ptrdiff_t>(start_), nullptr,
                                       /*allow_exceptions=*/false);
  if (start_ == data_.size()) {
    data_.clear();
    start_ = 0;
  }
  if (message.is_discarded() || !message.is_object()) {
    garbage = true;
    return std::nullopt;
  }
  return message;
}

std::optional<nlohmann::json> read_frame(int fd, FrameBuffer& buffer, bool& garbage) {
  for (;;) {
    if (auto message = buffer.next(garbage)) return message;
    if (garbage) return std::nullopt;
    if (buffer.fill(fd) != FrameBuffer::Status::ok) return std::nullopt;
  }
}

}  // namespace webexec::process::detail
