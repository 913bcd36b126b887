// libFuzzer target for the config parsers (src/config.cpp): config values come
// from the environment and from files, so they are untrusted. The input is
// read as one text value and given to parse_bool, parse_int (full range and a
// narrow one) and parse_duration (default and widest bounds); refusals throw
// std::invalid_argument or std::out_of_range, which is fine. The input also
// goes through escape_text / quote_value (with a few byte limits), whose
// output must be valid UTF-8 with no raw control character (C0, DEL, C1).
// Anything else (another exception, a crash, a sanitizer report) is a bug.
//
// Build: the fuzz preset (fuzz/CMakeLists.txt); run:
//   build/fuzz/fuzz/config_fuzzer -max_total_time=60 fuzz/corpus/config
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "webexec/config.hpp"

namespace {

// True if `text` is valid UTF-8 (no overlongs, surrogates or code points above
// U+10FFFF) and has no raw C0 control, DEL or C1 control character.
bool is_clean_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x20U || lead == 0x7FU) {
      return false;
    }
    if (lead < 0x80U) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (lead >= 0xC2U && lead <= 0xDFU) {
      length = 2;
      code = lead & 0x1FU;
    } else if (lead >= 0xE0U && lead <= 0xEFU) {
      length = 3;
      code = lead & 0x0FU;
    } else if (lead >= 0xF0U && lead <= 0xF4U) {
      length = 4;
      code = lead & 0x07U;
    } else {
      return false;
    }
    if (i + length > text.size()) {
      return false;
    }
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0U) != 0x80U) {
        return false;
      }
      code = (code << 6U) | (next & 0x3FU);
    }
    const bool overlong = (length == 3 && code < 0x800U) || (length == 4 && code < 0x10000U);
    const bool surrogate = code >= 0xD800U && code <= 0xDFFFU;
    const bool c1 = code >= 0x80U && code <= 0x9FU;
    if (overlong || surrogate || code > 0x10FFFFU || c1) {
      return false;
    }
    i += length;
  }
  return true;
}

void check_escaped(const std::string& escaped) {
  if (!is_clean_utf8(escaped)) {
    __builtin_trap();
  }
}

template <typename F>
void expect_value_or_refusal(F&& parse) {
  try {
    static_cast<void>(parse());
  } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch): refused, fine
  } catch (const std::out_of_range&) {      // NOLINT(bugprone-empty-catch): refused, fine
  }
  // Any other exception escapes and libFuzzer reports it as a crash.
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const webexec::ConfigValue value{std::string(text)};
  constexpr std::string_view key = "FUZZ_KEY";

  expect_value_or_refusal([&] { return webexec::parse_bool(key, value); });
  expect_value_or_refusal([&] { return webexec::parse_int(key, value); });
  expect_value_or_refusal([&] { return webexec::parse_int(key, value, -5, 5); });
  expect_value_or_refusal([&] { return webexec::parse_duration(key, value); });
  expect_value_or_refusal([&] {
    return webexec::parse_duration(key, value, std::chrono::nanoseconds(1),
                                   std::chrono::nanoseconds::max());
  });
  // A duration that parses must lie within the bounds it was given.
  try {
    const auto duration = webexec::parse_duration(key, value);
    if (duration < webexec::min_duration || duration > webexec::max_duration) {
      __builtin_trap();
    }
  } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch): refused, fine
  } catch (const std::out_of_range&) {      // NOLINT(bugprone-empty-catch): refused, fine
  }

  for (const std::size_t max_bytes :
       {std::size_t{0}, std::size_t{1}, std::size_t{7}, webexec::max_echoed_bytes, size}) {
    check_escaped(webexec::escape_text(text, max_bytes));
    check_escaped(webexec::quote_value(text, max_bytes));
  }
  return 0;
}
