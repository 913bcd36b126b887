// The process engine's wire format (wire.hpp): frames, the CBOR codec and
// the typed messages. Runs on whichever thread calls it: the host's
// submitting threads (encode) and dispatcher (decode), a worker's thread.
#include "process/wire.hpp"

#include <sys/socket.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
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

/// Moves field `name` out of `object`: arguments may be large, a copy costs.
nlohmann::json take_field(nlohmann::json& object, const char* name, const char* what) {
  const auto it = object.find(name);
  if (it == object.end()) {
    throw std::invalid_argument(std::string(what) + " has no field '" + name + "'");
  }
  return std::move(*it);
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

/// Nesting beyond this is refused, so a peer cannot exhaust the stack
/// (the decoder below recurses once per array or map level).
constexpr std::size_t kMaxDepth = 512;
/// The most slots an array reserves before its elements arrive.
constexpr std::size_t kMaxReserve = 4096;
/// The decoder's memory budget: this much per byte of the body, plus
/// kBudgetFloor (see CborDecoder).
constexpr std::size_t kBytesPerBodyByte = 128;
constexpr std::size_t kBudgetFloor = std::size_t{1} << 20U;

/// A strict decoder of exactly one CBOR data item (RFC 8949) into
/// nlohmann::json, for bodies from an untrusted peer. It reads what
/// nlohmann::json::to_cbor writes, with nlohmann's mapping (unsigned ->
/// number_unsigned, negative -> number_integer, byte string -> binary,
/// half/single/double -> number_float, text string -> string holding the
/// bytes as they are, map keys must be text strings, a repeated key keeps
/// the last value) and refuses the rest: tags (but one, below), undefined and other simple
/// values, reserved additional information, negative integers below -2^63,
/// indefinite-length string chunks that are not definite strings of the
/// same type, and trailing bytes. The one tag it reads is the one
/// nlohmann writes for a binary value with a subtype: a tag head 0xD8..0xDB
/// (the subtype in 1, 2, 4 or 8 bytes) followed by a byte string; any other
/// tag, or a tag on anything else, is refused.
///
/// Strings and byte strings are copied in one piece (nlohmann's reader
/// appends them byte by byte: a 1 MiB argument cost milliseconds). Every
/// length or element count is checked against the bytes left before
/// anything is allocated, an array reserves at most kMaxReserve slots
/// before its elements arrive, and only array and map levels recurse, at
/// most kMaxDepth deep. Memory: every allocation is charged (estimated,
/// with malloc's overhead) against a budget of kBytesPerBodyByte per byte
/// of the body plus kBudgetFloor (array slots as allocated, growth
/// included). Each decoded node takes at least one byte of the body and
/// the costliest (an empty map in an array, its slot half empty after the
/// array grew) about 100 bytes of memory, so every value fits; what does
/// not (arrays reserving slots their elements never fill) is refused
/// before it is allocated. Throws
/// `std::invalid_argument` (or bad_alloc), nothing else.
class CborDecoder {
 public:
  using json = nlohmann::json;

  explicit CborDecoder(std::string_view in)
      : begin_(in.data()),
        p_(in.data()),
        end_(p_ + in.size()),
        budget_(in.size() >
                        (std::numeric_limits<std::size_t>::max() - kBudgetFloor) / kBytesPerBodyByte
                    ? std::numeric_limits<std::size_t>::max()
                    : in.size() * kBytesPerBodyByte + kBudgetFloor) {}

  json item(std::size_t depth) {
    const std::uint8_t initial = byte();
    const auto info = static_cast<std::uint8_t>(initial & 0x1FU);
    switch (initial >> 5U) {
      case 0:
        return json(argument(info));
      case 1: {
        const std::uint64_t n = argument(info);
        if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          fail("a negative integer below -2^63");
        }
        return json(std::int64_t{-1} - static_cast<std::int64_t>(n));
      }
      case 2:
        return binary(info);
      case 3: {
        charge(kStringCost);
        std::string text;
        read_string(info, 3, text);
        return json(std::move(text));
      }
      case 4:
        return array(info, depth);
      case 5:
        return map(info, depth);
      case 6:
        return tagged(info);
      default:
        return simple(info);
    }
  }

  [[nodiscard]] bool at_end() const noexcept { return p_ == end_; }

  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument("the frame's body is not well-formed CBOR: " + why + " (at byte " +
                                std::to_string(p_ - begin_) + ")");
  }

 private:
  /// malloc's overhead per allocation, in the memory estimate.
  static constexpr std::size_t kMallocOverhead = 16;
  static constexpr std::size_t kStringCost = sizeof(std::string) + kMallocOverhead;
  static constexpr std::size_t kBinaryCost = sizeof(json::binary_t) + kMallocOverhead;
  static constexpr std::size_t kArrayCost = sizeof(json::array_t) + kMallocOverhead;
  static constexpr std::size_t kMapCost = sizeof(json::object_t) + kMallocOverhead;
  /// A map member: the tree node (its links, about 32 bytes) holding the
  /// key and the value.
  static constexpr std::size_t kMemberCost =
      32 + sizeof(json::object_t::value_type) + kMallocOverhead;

  [[nodiscard]] std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }

  /// Takes `bytes` of memory about to be allocated from the budget.
  void charge(std::size_t bytes) {
    if (bytes > budget_) {
      throw std::invalid_argument(
          "the frame's body would take more than " + std::to_string(kBytesPerBodyByte) +
          " bytes of memory per byte (plus " + std::to_string(kBudgetFloor) +
          ") to decode (at byte " + std::to_string(p_ - begin_) + ")");
    }
    budget_ -= bytes;
  }

  /// Gives back `bytes` charged for memory since freed.
  void refund(std::size_t bytes) noexcept {
    budget_ = bytes > std::numeric_limits<std::size_t>::max() - budget_
                  ? std::numeric_limits<std::size_t>::max()
                  : budget_ + bytes;
  }

  /// A byte string (its head's additional information `info`) as a binary
  /// value without a subtype.
  json binary(std::uint8_t info) {
    charge(kBinaryCost);
    json::binary_t bytes;
    read_string(info, 2, bytes);
    return json::binary(std::move(bytes));
  }

  /// A tag: only nlohmann's binary subtype (tag heads 0xD8..0xDB, as its
  /// CBOR writer emits them) on a byte string.
  json tagged(std::uint8_t info) {
    if (info < 24 || info > 27) fail("a tag");
    const std::uint64_t subtype = argument(info);
    const std::uint8_t initial = byte();
    if ((initial >> 5U) != 2) fail("a tag on something other than a byte string");
    json value = binary(static_cast<std::uint8_t>(initial & 0x1FU));
    value.get_binary().set_subtype(subtype);
    return value;
  }

  std::uint8_t byte() {
    if (p_ == end_) fail("it ends early");
    return static_cast<std::uint8_t>(*p_++);
  }

  /// `n` big-endian bytes as a number.
  std::uint64_t big_endian(std::size_t n) {
    if (left() < n) fail("it ends early");
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < n; ++i) value = (value << 8U) | static_cast<std::uint8_t>(p_[i]);
    p_ += n;
    return value;
  }

  /// The argument that additional information `info` announces (not for
  /// the indefinite length, 31).
  std::uint64_t argument(std::uint8_t info) {
    if (info < 24) return info;
    switch (info) {
      case 24:
        return big_endian(1);
      case 25:
        return big_endian(2);
      case 26:
        return big_endian(4);
      case 27:
        return big_endian(8);
      case 31:
        fail("an indefinite length where none is allowed");
      default:
        fail("reserved additional information " + std::to_string(info));
    }
  }

  /// A count of items each at least `min_bytes` long: more than the bytes
  /// left can hold is a lie.
  std::size_t count(std::uint64_t n, std::size_t min_bytes) const {
    if (n > left() / min_bytes) {
      fail("a count of " + std::to_string(n) + " items in " + std::to_string(left()) + " bytes");
    }
    return static_cast<std::size_t>(n);
  }

  std::string_view take(std::uint64_t n) {
    const std::size_t size = count(n, 1);
    const std::string_view out(p_, size);
    p_ += size;
    return out;
  }

  /// A text (major 3) or byte (major 2) string, appended to `out` in one
  /// piece per chunk.
  template <typename Out>
  void read_string(std::uint8_t info, std::uint8_t major, Out& out) {
    if (info != 31) {
      const std::string_view bytes = take(argument(info));
      charge(bytes.size());
      out.insert(out.end(), bytes.begin(), bytes.end());
      return;
    }
    for (;;) {  // bounded: every chunk takes at least one byte
      const std::uint8_t initial = byte();
      if (initial == 0xFF) return;
      const auto chunk_info = static_cast<std::uint8_t>(initial & 0x1FU);
      if ((initial >> 5U) != major || chunk_info == 31) {
        fail("an indefinite-length string chunk that is no definite string of its type");
      }
      const std::string_view bytes = take(argument(chunk_info));
      charge(bytes.size());  // growth beyond this is at most twice the total
      out.insert(out.end(), bytes.begin(), bytes.end());
    }
  }

  void enter(std::size_t depth) const {
    if (depth >= kMaxDepth) {
      throw std::invalid_argument("the frame's body nests deeper than " +
                                  std::to_string(kMaxDepth) + " levels");
    }
  }

  /// True (and the byte consumed) if the next byte is the break code.
  bool at_break() {
    if (p_ == end_) fail("it ends early");
    if (static_cast<std::uint8_t>(*p_) != 0xFF) return false;
    ++p_;
    return true;
  }

  /// Appends `element`, first growing `elements` if it is full: doubling,
  /// to at most `limit` slots, the new slots charged and the old given back.
  void append(json::array_t& elements, json&& element, std::size_t limit) {
    if (elements.size() == elements.capacity()) {
      const std::size_t old = elements.capacity();
      const std::size_t grown = std::min(limit, std::max<std::size_t>(2 * old, 16));
      charge(grown * sizeof(json));
      elements.reserve(grown);
      refund(old * sizeof(json));
    }
    elements.push_back(std::move(element));
  }

  json array(std::uint8_t info, std::size_t depth) {
    enter(depth);
    charge(kArrayCost);
    json out = json::array();
    auto& elements = out.get_ref<json::array_t&>();
    if (info == 31) {
      // Bounded: each element takes a byte.
      while (!at_break())
        append(elements, item(depth + 1), std::numeric_limits<std::size_t>::max());
      return out;
    }
    const std::size_t n = count(argument(info), 1);
    // Slots for elements not yet seen: a few, charged before they exist.
    const std::size_t reserved = std::min(n, kMaxReserve);
    charge(reserved * sizeof(json));
    elements.reserve(reserved);
    for (std::size_t i = 0; i < n; ++i) append(elements, item(depth + 1), n);
    return out;
  }

  json map(std::uint8_t info, std::size_t depth) {
    enter(depth);
    charge(kMapCost);
    json out = json::object();
    auto& members = out.get_ref<json::object_t&>();
    const bool indefinite = info == 31;
    const std::size_t n = indefinite ? 0 : count(argument(info), 2);
    for (std::size_t i = 0; indefinite || i < n; ++i) {
      if (indefinite && at_break()) break;
      const std::uint8_t initial = byte();
      if ((initial >> 5U) != 3) fail("a map key that is not a text string");
      charge(kMemberCost);
      std::string key;
      read_string(static_cast<std::uint8_t>(initial & 0x1FU), 3, key);
      members[std::move(key)] = item(depth + 1);
    }
    return out;
  }

  json simple(std::uint8_t info) {
    switch (info) {
      case 20:
        return json(false);
      case 21:
        return json(true);
      case 22:
        return json(nullptr);
      case 25:
        return json(half_to_double(static_cast<std::uint16_t>(big_endian(2))));
      case 26:
        return json(
            static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(big_endian(4)))));
      case 27:
        return json(std::bit_cast<double>(big_endian(8)));
      case 31:
        fail("a break code outside an indefinite-length item");
      default:
        fail("the simple value " + std::to_string(info));
    }
  }

  static double half_to_double(std::uint16_t half) {
    const unsigned exponent = (half >> 10U) & 0x1FU;
    const unsigned mantissa = half & 0x3FFU;
    double value = 0.0;
    if (exponent == 0) {
      value = std::ldexp(mantissa, -24);
    } else if (exponent == 31) {
      value = mantissa == 0 ? std::numeric_limits<double>::infinity()
                            : std::numeric_limits<double>::quiet_NaN();
    } else {
      value = std::ldexp(mantissa + 1024, static_cast<int>(exponent) - 25);
    }
    return (half & 0x8000U) != 0 ? -value : value;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::size_t budget_;  ///< bytes of memory the rest of the decode may take
};

}  // namespace

/// At least the size of `value`'s CBOR (9 bytes is the longest head), so
/// encode_body allocates once: nlohmann appends, and a long string followed
/// by anything would otherwise be copied again when the output grows.
/// Throws `std::invalid_argument` for arrays or maps nested deeper than the
/// decoder reads (kMaxDepth, `depth` is the level of `value`): such a value
/// fails where it is encoded, not as a malformed frame on the other side.
std::size_t cbor_size_bound(const nlohmann::json& value, std::size_t depth = 0) {
  constexpr std::size_t kHead = 9;
  if (value.is_structured() && depth >= kMaxDepth) {
    throw std::invalid_argument("a value nested deeper than " + std::to_string(kMaxDepth) +
                                " levels of arrays and objects cannot cross between processes");
  }
  switch (value.type()) {
    case nlohmann::json::value_t::string:
      return kHead + value.get_ref<const std::string&>().size();
    case nlohmann::json::value_t::binary:
      return 2 * kHead + value.get_binary().size();
    case nlohmann::json::value_t::array: {
      std::size_t size = kHead;
      for (const auto& element : value) size += cbor_size_bound(element, depth + 1);
      return size;
    }
    case nlohmann::json::value_t::object: {
      std::size_t size = kHead;
      for (const auto& [key, element] : value.get_ref<const nlohmann::json::object_t&>()) {
        size += kHead + key.size() + cbor_size_bound(element, depth + 1);
      }
      return size;
    }
    default:
      return kHead;
  }
}

std::string encode_body(const nlohmann::json& value) {
  std::string out;
  out.reserve(cbor_size_bound(value));
  nlohmann::json::to_cbor(value, nlohmann::detail::output_adapter<char>(out));
  return out;
}

nlohmann::json decode_body(std::string_view body) {
  CborDecoder decoder(body);
  nlohmann::json value = decoder.item(0);
  if (!decoder.at_end()) decoder.fail("bytes after the value");
  return value;
}

namespace {

void check_body_size(std::size_t size) {
  if (size > kMaxPayloadCeiling) {
    throw std::length_error("a frame body of " + std::to_string(size) +
                            " bytes is over the wire's ceiling of " +
                            std::to_string(kMaxPayloadCeiling) + " bytes");
  }
}

void put_header(std::string& out, Kind kind, std::uint64_t id, std::uint16_t slot,
                std::size_t body_size) {
  put_le(out, kHeaderAfterLength + body_size, 4);
  out.push_back(static_cast<char>(kWireVersion));
  out.push_back(static_cast<char>(kind));
  put_le(out, slot, 2);
  put_le(out, id, 8);
}

}  // namespace

void append_frame(std::string& out, Kind kind, std::uint64_t id, std::uint16_t slot,
                  std::string_view body) {
  check_body_size(body.size());
  out.reserve(out.size() + kHeaderSize + body.size());
  put_header(out, kind, id, slot, body.size());
  out.append(body);
}

std::string frame_header(Kind kind, std::uint64_t id, std::uint16_t slot, std::size_t body_size) {
  check_body_size(body_size);
  std::string out;
  out.reserve(kHeaderSize);
  put_header(out, kind, id, slot, body_size);
  return out;
}

OutFrame encode_frame(Kind kind, std::uint64_t id, const nlohmann::json& value) {
  OutFrame frame;
  std::string& out = frame.head;
  if (value.is_string() && value.get_ref<const std::string&>().size() >= kDirectTail) {
    // What to_cbor writes for a text string: major type 3, the shortest
    // length argument (4 or 8 bytes here), then the bytes.
    frame.tail = value.get_ref<const std::string&>();
    const std::uint64_t n = frame.tail.size();
    const std::size_t argument = n <= 0xFFFFFFFFU ? 4 : 8;
    check_body_size(1 + argument + n);
    put_header(out, kind, id, 0, 1 + argument + n);
    out.push_back(static_cast<char>(argument == 4 ? 0x7A : 0x7B));
    for (std::size_t i = argument; i-- > 0;)
      out.push_back(static_cast<char>((n >> (8 * i)) & 0xFFU));
    return frame;
  }
  out.reserve(kHeaderSize + cbor_size_bound(value));
  put_header(out, kind, id, 0, 0);  // the length is set below
  nlohmann::json::to_cbor(value, nlohmann::detail::output_adapter<char>(out));
  const std::size_t body_size = out.size() - kHeaderSize;
  check_body_size(body_size);
  const std::uint64_t length = kHeaderAfterLength + body_size;
  for (std::size_t i = 0; i < 4; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xFFU);
  return frame;
}

// ------------------------------------------------------------ FrameReader

/// A reader's buffer above this is released once it is empty, so one huge
/// frame does not pin its size for the worker's lifetime.
constexpr std::size_t kKeepCapacity = std::size_t{4} << 20U;
/// The least a read asks for.
constexpr std::size_t kReadChunk = std::size_t{256} << 10U;

void FrameReader::reserve_more(std::size_t n) {
  if (start_ == end_) {
    start_ = end_ = 0;
    if (capacity_ > kKeepCapacity && n <= kKeepCapacity) {
      buffer_.reset();
      capacity_ = 0;
    }
  }
  if (capacity_ - end_ >= n) return;
  const std::size_t unread = end_ - start_;
  if (capacity_ - unread >= n) {
    std::memmove(buffer_.get(), buffer_.get() + start_, unread);
  } else {
    // Grow geometrically, but never more than kKeepCapacity beyond the need.
    const std::size_t need = unread + n;
    const std::size_t capacity = std::max(need, std::min(2 * capacity_, need + kKeepCapacity));
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    if (unread > 0) std::memcpy(bigger.get(), buffer_.get() + start_, unread);
    buffer_ = std::move(bigger);
    capacity_ = capacity;
  }
  start_ = 0;
  end_ = unread;
}

FrameReader::Status FrameReader::fill(int fd, std::size_t budget) {
  std::size_t got = 0;
  for (;;) {
    // With a frame's length in, room for all of it: one read can take as
    // much as the socket has, and the buffer grows once.
    std::size_t want = kReadChunk;
    bool frame_ready = false;
    if (end_ - start_ >= 4) {
      const std::uint64_t length = get_le(buffer_.get() + start_, 4);
      if (length <= max_body_ + kHeaderAfterLength) {
        if (4 + length > end_ - start_) {
          // The rest of the frame, or a whole read if that fits anyway.
          const auto rest = static_cast<std::size_t>(4 + length - (end_ - start_));
          want = std::max(rest, std::min(kReadChunk, capacity_ - (end_ - start_)));
        } else {
          frame_ready = true;
        }
      }
    }
    // A complete frame is in: hand it out before reading on would move or
    // grow the buffer (that copied every 1 MiB frame read in one go with
    // the start of the next into a bigger, fresh buffer).
    if (frame_ready && capacity_ - end_ < want) return Status::ok;
    reserve_more(want);
    const ssize_t n = ::read(fd, buffer_.get() + end_, want);
    if (n > 0) {
      end_ += static_cast<std::size_t>(n);
      got += static_cast<std::size_t>(n);
      // A short read means the socket is drained for now; a blocking fd
      // must not be read again (it would block).
      if (static_cast<std::size_t>(n) < want || got >= budget) return Status::ok;
      continue;
    }
    if (n == 0) return got > 0 ? Status::ok : Status::eof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::ok;
    return got > 0 ? Status::ok : Status::eof;
  }
}

void FrameReader::feed(std::string_view bytes) {
  reserve_more(bytes.size());
  if (!bytes.empty()) std::memcpy(buffer_.get() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

std::optional<Frame> FrameReader::next() {
  if (!error_.empty()) return std::nullopt;
  const std::size_t available = end_ - start_;
  if (available < 4) return std::nullopt;
  const char* p = buffer_.get() + start_;
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

/// Bodies up to this size are copied into the buffer (cheaper than a chunk
/// of their own); larger ones are queued by reference.
constexpr std::size_t kCopyBelow = std::size_t{64} << 10U;
/// At most this many chunks per sendmsg().
constexpr std::size_t kMaxIov = 64;

void OutBuffer::append_owned(std::string_view bytes) {
  if (chunks_.empty() || chunks_.back().shared) chunks_.emplace_back();
  chunks_.back().owned.append(bytes);
  size_ += bytes.size();
}

void OutBuffer::push(std::string_view header, const std::shared_ptr<const std::string>& body) {
  append_owned(header);
  if (body->size() < kCopyBelow) {
    append_owned(*body);
    return;
  }
  chunks_.push_back(Chunk{{}, body});
  size_ += body->size();
}

void OutBuffer::clear() noexcept {
  chunks_.clear();
  start_ = 0;
  size_ = 0;
}

OutBuffer::Status OutBuffer::flush(int fd) {
  while (!chunks_.empty()) {
    std::array<iovec, kMaxIov> iov{};
    std::size_t count = 0;
    for (const Chunk& chunk : chunks_) {
      if (count == kMaxIov) break;
      const std::string_view bytes = chunk.bytes().substr(count == 0 ? start_ : 0);
      // sendmsg() only reads through iov_base.
      iov[count].iov_base =
          const_cast<char*>(bytes.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
      iov[count].iov_len = bytes.size();
      ++count;
    }
    msghdr message{};
    message.msg_iov = iov.data();
    message.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::pending;
    if (n <= 0) return Status::error;
    auto written = static_cast<std::size_t>(n);
    size_ -= written;
    while (written > 0) {
      const std::size_t rest = chunks_.front().bytes().size() - start_;
      if (written < rest) {
        start_ += written;
        break;
      }
      written -= rest;
      chunks_.pop_front();
      start_ = 0;
    }
  }
  return Status::done;
}

void tune_worker_allocator() noexcept {
#if defined(__GLIBC__)
  static_cast<void>(::mallopt(M_MMAP_THRESHOLD, 32 << 20));
  static_cast<void>(::mallopt(M_TRIM_THRESHOLD, 64 << 20));
#endif
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
  nlohmann::json j = decode_body(body);
  if (!j.is_object()) throw std::invalid_argument("a job frame's body is not a map");
  JobMessage m;
  m.job = string_field(j, "job", "a job frame");
  m.label = string_field(j, "label", "a job frame");
  m.args = take_field(j, "args", "a job frame");
  m.ctx = take_field(j, "ctx", "a job frame");
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
