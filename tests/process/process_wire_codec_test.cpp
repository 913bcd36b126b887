// The wire codec itself (src/process/wire.*), without processes: the CBOR
// decoder reads every value the encoder writes, with nlohmann's mapping,
// and refuses malformed or hostile bodies with std::invalid_argument (never
// a crash: bodies come from untrusted workers); FrameReader cuts streams
// into frames whatever the pieces, also frames of many MiB from a socket.
// Runs on the test's thread (and one writer thread in the socket test); the
// operator new below counts the test thread's allocations while asked to.
#include <malloc.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process/wire.hpp"

namespace {

/// What the test thread allocated while `counting` was set: the largest
/// request, and the most it held at once (malloc's usable sizes, the
/// requests rounded up).
struct AllocationCount {
  std::size_t largest = 0;
  std::size_t live = 0;
  std::size_t peak = 0;
};
thread_local bool counting = false;
thread_local AllocationCount counted;

void release(void* p) noexcept {
  if (counting && p != nullptr) counted.live -= std::min(counted.live, ::malloc_usable_size(p));
  std::free(p);
}

}  // namespace

void* operator new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  if (counting) {
    counted.largest = std::max(counted.largest, size);
    counted.live += ::malloc_usable_size(p);
    counted.peak = std::max(counted.peak, counted.live);
  }
  return p;
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { release(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept { release(p); }

namespace {

namespace wire = webexec::process::detail;
using nlohmann::json;

/// Every byte value, NUL included: not UTF-8.
std::string all_bytes() {
  std::string out;
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<char>(i));
  return out;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out.push_back(static_cast<char>(v));
  return out;
}

/// The message decode_body refuses `body` with, or "accepted".
std::string refusal(const std::string& body) {
  try {
    static_cast<void>(wire::decode_body(body));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ProcessWireCodecTest, EveryKindOfValueRoundTrips) {
  const std::vector<json> values = {
      nullptr,
      true,
      false,
      0,
      23,
      24,
      255,
      256,
      65535,
      65536,
      std::numeric_limits<std::uint32_t>::max(),
      std::numeric_limits<std::uint64_t>::max(),
      -1,
      -24,
      -25,
      -256,
      -257,
      std::numeric_limits<std::int64_t>::min(),
      0.5,
      1.0e300,
      -0.0,
      std::numeric_limits<double>::infinity(),
      "",
      all_bytes(),
      std::string(100'000, 'x'),
      json::binary({0, 1, 255}),
      json::array(),
      json::object(),
      {{"args", {all_bytes(), 1, {{"nested", {1, 2, nullptr}}}}}, {"ctx", json::object()}},
  };
  for (const json& value : values) {
    EXPECT_EQ(wire::decode_body(wire::encode_body(value)), value) << value.dump(-1, ' ', true);
  }
  const json nan = wire::decode_body(wire::encode_body(std::nan("")));
  EXPECT_TRUE(nan.is_number_float() && std::isnan(nan.get<double>()));
}

TEST(ProcessWireCodecTest, NumbersKeepNlohmannsTypes) {
  EXPECT_TRUE(wire::decode_body(bytes({0x1B, 0, 0, 0, 1, 0, 0, 0, 0})).is_number_unsigned());
  EXPECT_EQ(wire::decode_body(bytes({0x38, 0xFF})), -256);
  EXPECT_TRUE(wire::decode_body(bytes({0x20})).is_number_integer());
  EXPECT_EQ(wire::decode_body(bytes({0xF9, 0x3C, 0x00})), 1.0);  // half
  EXPECT_EQ(wire::decode_body(bytes({0xF9, 0x00, 0x01})), std::ldexp(1.0, -24));
  EXPECT_EQ(wire::decode_body(bytes({0xFA, 0x3F, 0xC0, 0x00, 0x00})), 1.5);  // single
}

TEST(ProcessWireCodecTest, IndefiniteLengthItemsAreRead) {
  EXPECT_EQ(wire::decode_body(bytes({0x7F, 0x62, 'a', 'b', 0x61, 'c', 0xFF})), "abc");
  EXPECT_EQ(wire::decode_body(bytes({0x5F, 0x41, 7, 0x40, 0xFF})), json::binary({7}));
  EXPECT_EQ(wire::decode_body(bytes({0x9F, 0x01, 0x9F, 0xFF, 0xFF})), json::parse("[1, []]"));
  EXPECT_EQ(wire::decode_body(bytes({0xBF, 0x61, 'k', 0x01, 0xFF})), json::parse(R"({"k": 1})"));
}

TEST(ProcessWireCodecTest, ARepeatedKeyKeepsTheLastValue) {
  EXPECT_EQ(wire::decode_body(bytes({0xA2, 0x61, 'k', 0x01, 0x61, 'k', 0x02})),
            json::parse(R"({"k": 2})"));
}

TEST(ProcessWireCodecTest, MalformedBodiesAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "ends early"},
      {bytes({0x18}), "ends early"},
      {bytes({0x62, 'a'}), "items in"},
      {bytes({0x1C}), "reserved additional information 28"},
      {bytes({0x1F}), "indefinite length where none is allowed"},
      {bytes({0xC0, 0x01}), "a tag"},
      {bytes({0xF7}), "simple value 23"},
      {bytes({0xF8, 0x20}), "simple value 24"},
      {bytes({0xFF}), "break code"},
      {bytes({0x3B, 0x80, 0, 0, 0, 0, 0, 0, 0}), "below -2^63"},
      {bytes({0x01, 0x01}), "bytes after the value"},
      {bytes({0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), "items in"},
      {bytes({0xBA, 0x00, 0x01, 0x00, 0x00, 0x01}), "items in"},
      {bytes({0xA1, 0x01, 0x01}), "map key that is not a text string"},
      {bytes({0x7F, 0x41, 'a', 0xFF}), "string chunk"},
      {bytes({0x9F, 0x01}), "ends early"},
  };
  for (const auto& [body, expected] : cases) {
    const std::string message = refusal(body);
    EXPECT_NE(message.find(expected), std::string::npos) << message << " / " << expected;
  }
}

// Regression: nlohmann's reader recursed once per nested indefinite-length
// string chunk, with no bound, so a worker's result frame of 1 MiB of 0x7F
// bytes overflowed the host's stack (a segmentation fault; checked with the
// decoder of c989313).
TEST(ProcessWireCodecTest, NestedIndefiniteStringsAreRefusedNotRecursed) {
  EXPECT_NE(refusal(std::string(1U << 20U, '\x7F')).find("string chunk"), std::string::npos);
  EXPECT_NE(refusal(std::string(1U << 20U, '\x5F')).find("string chunk"), std::string::npos);
}

TEST(ProcessWireCodecTest, NestingIsBoundedAt512Levels) {
  const std::string ok = std::string(512, '\x81') + '\x01';
  EXPECT_NO_THROW(static_cast<void>(wire::decode_body(ok)));
  EXPECT_NE(refusal(std::string(513, '\x81') + '\x01').find("nests deeper than 512"),
            std::string::npos);
  EXPECT_NE(refusal(std::string(1U << 20U, '\x9F')).find("nests deeper than 512"),
            std::string::npos);
}

/// What decoding `body` allocates, and its refusal (or "accepted").
std::pair<AllocationCount, std::string> decode_counting(const std::string& body) {
  counted = AllocationCount{};
  counting = true;
  std::string message = "accepted";
  try {
    const json value = wire::decode_body(body);
    counting = false;  // before the value is freed
  } catch (const std::invalid_argument& e) {
    counting = false;
    message = e.what();
  }
  return {counted, message};
}

// Regression: nlohmann's CBOR writer puts a binary value's subtype in a tag
// (0xD8..0xDB and the subtype, then the byte string), which the decoder
// refused as "a tag", so a job returning json::binary(bytes, subtype) (any
// value from from_msgpack/from_bson with an ext type) had its worker killed
// (checked on 7e11dd2: "malformed ... a tag" for every subtype).
TEST(ProcessWireCodecTest, BinaryWithASubtypeRoundTrips) {
  const std::vector<std::uint64_t> subtypes = {
      0, 42, 255, 256, 65535, 65536, 1ULL << 32U, std::numeric_limits<std::uint64_t>::max()};
  for (const std::uint64_t subtype : subtypes) {
    for (const json& value : {json::binary({1, 2, 3}, subtype), json::binary({}, subtype),
                              json::binary(std::vector<std::uint8_t>(70'000, 9), subtype)}) {
      const std::string body = wire::encode_body(value);
      const json back = wire::decode_body(body);
      ASSERT_TRUE(back.is_binary()) << subtype;
      EXPECT_TRUE(back.get_binary().has_subtype()) << subtype;
      EXPECT_EQ(back.get_binary().subtype(), subtype);
      EXPECT_EQ(back, value) << subtype;
      // What nlohmann's own reader makes of it, storing tags as subtypes.
      EXPECT_EQ(back, json::from_cbor(body, true, true, json::cbor_tag_handler_t::store));
    }
  }
  EXPECT_EQ(wire::encode_body(json::binary({1, 2, 3}, 42)), bytes({0xD8, 42, 0x43, 1, 2, 3}));
  const json plain = wire::decode_body(wire::encode_body(json::binary({1, 2, 3})));
  EXPECT_FALSE(plain.get_binary().has_subtype());
  EXPECT_EQ(plain, json::binary({1, 2, 3}));
  // An indefinite-length byte string carries a subtype too.
  EXPECT_EQ(wire::decode_body(bytes({0xD9, 1, 0, 0x5F, 0x41, 7, 0x40, 0xFF})),
            json::binary({7}, 256));
  // Nested, as a job's result would be: a msgpack ext value.
  const json from_msgpack = json::from_msgpack(bytes({0x91, 0xD4, 0x05, 0x63}));
  EXPECT_EQ(wire::decode_body(wire::encode_body(from_msgpack)), from_msgpack);
}

TEST(ProcessWireCodecTest, TagsOtherThanABinarySubtypeAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {bytes({0xC2, 0x41, 0x01}), "a tag"},  // a one-byte tag head: nlohmann never writes it
      {bytes({0xD7, 0x41, 0x01}), "a tag"},
      {bytes({0xDC, 0x41, 0x01}), "a tag"},
      {bytes({0xDF, 0x41, 0x01}), "a tag"},
      {bytes({0xD8, 42, 0x01}), "a tag on something other than a byte string"},
      {bytes({0xD8, 42, 0x61, 'a'}), "a tag on something other than a byte string"},
      {bytes({0xD8, 42, 0x80}), "a tag on something other than a byte string"},
      {bytes({0xD8, 42, 0xD8, 43, 0x41, 0x01}), "a tag on something other than a byte string"},
      {bytes({0xD8, 42, 0xF6}), "a tag on something other than a byte string"},
      {bytes({0xD8}), "ends early"},
      {bytes({0xD8, 42}), "ends early"},
      {bytes({0xDB, 0, 0, 0}), "ends early"},
      {bytes({0xD8, 42, 0x42, 0x01}), "items in"},
      {bytes({0xA1, 0xD8, 1, 0x41, 'k', 0x01}), "map key that is not a text string"},
  };
  for (const auto& [body, expected] : cases) {
    const std::string message = refusal(body);
    EXPECT_NE(message.find(expected), std::string::npos) << message << " / " << expected;
  }
}

// Regression: an array reserved a slot (16 bytes) per declared element
// before reading any, so a 1 MiB body declaring 2^20 elements allocated
// 16 MiB at once before its first (bad) element (checked on 7e11dd2: the
// largest allocation was 16 MiB).
TEST(ProcessWireCodecTest, ADeclaredCountReservesLittleBeforeItsElements) {
  std::string body = bytes({0x9A, 0x00, 0x10, 0x00, 0x00});
  body.append(std::size_t{1} << 20U, '\xFF');
  const auto [count, message] = decode_counting(body);
  EXPECT_NE(message.find("break code"), std::string::npos) << message;
  EXPECT_LT(count.largest, std::size_t{1} << 20U);
  // And counts over the bytes left are refused before anything is reserved.
  const auto [huge, huge_message] =
      decode_counting(bytes({0x9B, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x01}));
  EXPECT_NE(huge_message.find("items in"), std::string::npos) << huge_message;
  EXPECT_LT(huge.peak, std::size_t{4096});
}

// Regression: nested arrays each declaring 4096 elements (3 bytes a level)
// reserved 64 KiB each before their elements came, 32 MiB from a 5.6 KiB
// body (checked on 7e11dd2: 32 MiB allocated, then "ends early"). Now the
// memory budget refuses them after about 1.5 MiB.
TEST(ProcessWireCodecTest, NestedReservationsAreChargedToTheMemoryBudget) {
  std::string body;
  for (int i = 0; i < 512; ++i) body += bytes({0x99, 0x10, 0x00});
  body.append(4096, '\x00');
  const auto [count, message] = decode_counting(body);
  EXPECT_NE(message.find("bytes of memory per byte"), std::string::npos) << message;
  EXPECT_LT(count.peak, std::size_t{4} << 20U);
}

// Bodies of nothing but empty containers cost the most memory per byte:
// they fit the budget (128 bytes per byte of body plus 1 MiB) and the most
// memory they hold at once stays under it. 2^18 + 1 elements: the array's
// slots are half empty after it doubled. (Debug: a few seconds.)
TEST(ProcessWireCodecTest, ManyEmptyContainersStayWithinTheMemoryBudget) {
  constexpr std::size_t kCount = (std::size_t{1} << 18U) + 1;
  for (const char empty : {'\x80', '\xA0', '\x40', '\x60'}) {
    const std::string body = '\x9F' + std::string(kCount, empty) + '\xFF';
    const auto [count, message] = decode_counting(body);
    EXPECT_EQ(message, "accepted");
    EXPECT_LE(count.peak, 128 * body.size() + (std::size_t{1} << 20U));
    std::cout << "256 KiB of 0x" << std::hex << (static_cast<unsigned>(empty) & 0xFFU) << std::dec
              << " in an indefinite array: at most " << count.peak / body.size()
              << " bytes held per byte of body\n";
  }
  // Map members with distinct keys, each an empty map.
  std::string body = bytes({0xBF});
  for (std::size_t i = 0; i < kCount / 2; ++i) {
    body += bytes({0x78, 0x04});  // a distinct 4-byte key
    for (int shift = 0; shift < 32; shift += 8) body.push_back(static_cast<char>(i >> shift));
    body.push_back('\xA0');
  }
  body.push_back('\xFF');
  const auto [count, message] = decode_counting(body);
  EXPECT_EQ(message, "accepted");
  EXPECT_LE(count.peak, 128 * body.size() + (std::size_t{1} << 20U));
  std::cout << "map members {key: {}}: at most " << count.peak / body.size()
            << " bytes held per byte of body\n";
}

// Regression: encode_body had no depth limit, so a result nested deeper than
// the decoder reads was sent and refused on the other side as a malformed
// frame, killing its worker (checked on 7e11dd2: encode_body accepted 513
// levels). Now encoding fails with a clear error (the job alone fails).
TEST(ProcessWireCodecTest, EncodingRefusesWhatTheDecoderWouldRefuse) {
  json deep = 1;
  for (int i = 0; i < 512; ++i) deep = json::array({std::move(deep)});
  EXPECT_EQ(wire::decode_body(wire::encode_body(deep)), deep);
  json deeper = json::array({deep});
  try {
    static_cast<void>(wire::encode_body(deeper));
    ADD_FAILURE() << "513 levels were encoded";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than 512 levels"), std::string::npos)
        << e.what();
  }
  json object = nullptr;
  for (int i = 0; i < 513; ++i) object = json{{"k", std::move(object)}};
  EXPECT_THROW(static_cast<void>(wire::encode_body(object)), std::invalid_argument);
}

TEST(ProcessWireCodecTest, JobMessageFieldsAreMovedOut) {
  const json request = {{"job", "j"},   {"args", {all_bytes()}}, {"ctx", {{"g", 1}}},
                        {"label", "l"}, {"progress", true},      {"limit", 10U}};
  const wire::JobMessage m = wire::decode_job_message(wire::encode_body(request));
  EXPECT_EQ(m.job, "j");
  EXPECT_EQ(m.args, json::array({all_bytes()}));
  EXPECT_EQ(m.ctx, json::parse(R"({"g": 1})"));
  EXPECT_EQ(m.limit, 10U);
  EXPECT_THROW(static_cast<void>(wire::decode_job_message(wire::encode_body({{"job", "j"}}))),
               std::invalid_argument);
}

/// Three frames, the middle one `size` bytes of body.
std::string three_frames(std::size_t size) {
  std::string stream;
  wire::append_frame(stream, wire::Kind::started, 1, 0, "");
  wire::append_frame(stream, wire::Kind::result, 2, 3, wire::encode_body(std::string(size, 'b')));
  wire::append_frame(stream, wire::Kind::skipped, 3, 0, "");
  return stream;
}

void expect_three_frames(wire::FrameReader& reader, const std::string& stream, std::size_t piece) {
  std::vector<std::pair<std::uint64_t, std::size_t>> seen;  // id, body size
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    reader.feed(std::string_view(stream).substr(at, piece));
    while (auto frame = reader.next()) seen.emplace_back(frame->id, frame->body.size());
  }
  ASSERT_TRUE(reader.error().empty()) << reader.error();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0].first, 1U);
  EXPECT_EQ(seen[1].first, 2U);
  EXPECT_EQ(seen[2].first, 3U);
}

TEST(ProcessWireCodecTest, FrameReaderCutsAnyPiecesIntoFrames) {
  for (const std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
    wire::FrameReader reader(1U << 20U);
    expect_three_frames(reader, three_frames(10'000), piece);
  }
  wire::FrameReader reader(16U << 20U);
  const std::string big = three_frames(8U << 20U);
  expect_three_frames(reader, big, 300'000);
  expect_three_frames(reader, three_frames(10), 1);  // the same reader again
}

TEST(ProcessWireCodecTest, FrameReaderReadsAnEightMiBFrameFromASocket) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const std::string stream = three_frames(8U << 20U);
  std::thread writer([&] {
    EXPECT_TRUE(wire::write_all(fds[1], stream));
    ::close(fds[1]);
  });
  wire::FrameReader reader(16U << 20U);
  std::vector<std::size_t> sizes;
  // Bounded: every fill() but the last reads at least one byte.
  for (std::size_t reads = 0; reads <= stream.size(); ++reads) {
    const auto status = reader.fill(fds[0], 1);
    while (auto frame = reader.next()) {
      sizes.push_back(frame->body.size());
      if (frame->kind == wire::Kind::result) {
        EXPECT_EQ(wire::decode_body(frame->body), std::string(8U << 20U, 'b'));
      }
    }
    if (status != wire::FrameReader::Status::ok) break;
  }
  writer.join();
  ::close(fds[0]);
  ASSERT_EQ(sizes.size(), 3U);
  EXPECT_EQ(sizes[1], wire::encode_body(std::string(8U << 20U, 'b')).size());
}

// Many 1 MiB frames arriving back to back over a non-blocking socket, read
// with the host's budget: the buffer stays about one frame large (it used
// to grow past the largest frame, copying each frame read together with
// the start of the next into a fresh, bigger buffer, and to be released
// and grown again above 4 MiB).
TEST(ProcessWireCodecTest, FrameReaderBufferStaysNearOneFrame) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  const int blocking = 0;
  ASSERT_EQ(::ioctl(fds[1], FIONBIO, &blocking), 0);
  constexpr std::size_t kFrames = 48;
  const std::string body = wire::encode_body(std::string(1U << 20U, 'c'));
  std::string frame;
  wire::append_frame(frame, wire::Kind::result, 5, 0, body);
  std::thread writer([&] {
    for (std::size_t i = 0; i < kFrames; ++i) EXPECT_TRUE(wire::write_all(fds[1], frame));
    ::close(fds[1]);
  });
  wire::FrameReader reader(16U << 20U);
  std::size_t frames = 0;
  std::size_t largest = 0;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    ASSERT_GE(::poll(&p, 1, 10'000), 1);
    const auto status = reader.fill(fds[0], 4U << 20U);
    largest = std::max(largest, reader.capacity());
    while (auto f = reader.next()) {
      ++frames;
      EXPECT_EQ(f->body.size(), body.size());
    }
    ASSERT_TRUE(reader.error().empty()) << reader.error();
    if (status == wire::FrameReader::Status::eof) break;
  }
  writer.join();
  ::close(fds[0]);
  EXPECT_EQ(frames, kFrames);
  EXPECT_LE(largest, frame.size() + (256U << 10U)) << "the buffer grew past one frame and a read";
}

// encode_frame (the worker's result frames) writes exactly the bytes of
// append_frame(encode_body(...)), with a long string's bytes left in place.
TEST(ProcessWireCodecTest, EncodeFrameWritesWhatAppendFrameWrites) {
  std::string long_text;
  for (std::size_t i = 0; i < wire::kDirectTail / 256 + 1; ++i) long_text += all_bytes();
  const std::vector<json> values = {json(long_text), json(std::string(10, 'x')),
                                    json::array({long_text}), json(42), json(nullptr)};
  for (const json& value : values) {
    const wire::OutFrame frame = wire::encode_frame(wire::Kind::result, 7, value);
    std::string expected;
    wire::append_frame(expected, wire::Kind::result, 7, 0, wire::encode_body(value));
    EXPECT_EQ(frame.head + std::string(frame.tail), expected) << value.type_name();
    EXPECT_EQ(frame.body_size(), expected.size() - wire::kHeaderSize);
    EXPECT_EQ(frame.tail.empty(),
              !value.is_string() || value.get_ref<const std::string&>().size() < wire::kDirectTail);
  }
}

// OutBuffer sends queued frames in order, large bodies by reference, over a
// socket that takes them in pieces.
TEST(ProcessWireCodecTest, OutBufferSendsFramesInOrderInPieces) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  const auto big = std::make_shared<const std::string>(std::string(3U << 20U, 'q'));
  const auto small = std::make_shared<const std::string>(all_bytes());
  wire::OutBuffer out;
  std::string expected;
  for (std::uint64_t id = 1; id <= 3; ++id) {
    const auto& body = id == 2 ? big : small;
    const std::string header = wire::frame_header(wire::Kind::job, id, 1, body->size());
    out.push(header, body);
    expected += header + *body;
  }
  EXPECT_EQ(out.size(), expected.size());
  std::string got;
  std::vector<char> chunk(64U << 10U);
  // Bounded: each round moves at least one byte while anything is left.
  for (std::size_t round = 0; round <= expected.size() && got.size() < expected.size(); ++round) {
    ASSERT_NE(out.flush(fds[0]), wire::OutBuffer::Status::error);
    const ssize_t n = ::read(fds[1], chunk.data(), chunk.size());
    if (n > 0) got.append(chunk.data(), static_cast<std::size_t>(n));
  }
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.size(), 0U);
  EXPECT_TRUE(got == expected);
  out.push(wire::frame_header(wire::Kind::job, 4, 0, big->size()), big);
  out.clear();
  EXPECT_TRUE(out.empty());
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
