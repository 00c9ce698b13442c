// The section container (smic/container.hpp): layout, CRCs, versions, committed counts, atomic
// writes, and damaged bytes refused with FormatError.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "smic/container.hpp"
#include "support.hpp"

using smic::FormatError;

namespace {

std::vector<smic::Section> two_sections() {
  return {{smic::make_tag("HEAD"), {'{', '}'}}, {smic::make_tag("DATA"), {1, 2, 3, 4, 5, 6, 7}}};
}

smic::ContainerView parse(const std::vector<uint8_t>& bytes) {
  return smic::parse_container(bytes.data(), bytes.size(), smic::kCollectionMagic, "smic collection",
                               "<test>");
}

}  // namespace

TEST_CASE("a container is the preamble and each section's tag, length, payload and CRC") {
  const auto bytes = smic::encode_container(smic::kCollectionMagic, 1, two_sections());
  // 16 + (16 + 2) + (16 + 7)
  CHECK(bytes.size() == smic::kPreambleBytes + 2 * smic::kSectionOverhead + 2 + 7);
  CHECK(std::memcmp(bytes.data(), smic::kCollectionMagic.data(), 8) == 0);
  CHECK(bytes[8] == 1);  // version, little-endian
  CHECK(bytes[9] == 0);
  CHECK(std::memcmp(&bytes[16], "HEAD", 4) == 0);
  CHECK(bytes[20] == 2);  // u64 length
  // The CRC is zlib's CRC-32 over tag, length and payload.
  const uint32_t crc = smic::crc32(&bytes[16], 12 + 2);
  CHECK(uint32_t{bytes[30]} == (crc & 0xFF));
  CHECK(uint32_t{bytes[33]} == crc >> 24);

  const auto view = parse(bytes);
  CHECK(view.version == 1);
  REQUIRE(view.sections.size() == 2);
  CHECK(smic::tag_name(view.sections[1].tag) == "'DATA'");
  CHECK(view.sections[1].size == 7);
  CHECK(view.sections[1].data[6] == 7);
  CHECK(view.sections[1].offset == 16 + 18);
  CHECK(view.end == bytes.size());
  CHECK(view.torn_bytes == 0);
}

TEST_CASE("crc32 is zlib's") {
  const char* text = "123456789";
  CHECK(smic::crc32(reinterpret_cast<const uint8_t*>(text), 9) == 0xCBF43926u);
  // Continuing from a partial CRC gives the CRC of the whole.
  const uint32_t first = smic::crc32(reinterpret_cast<const uint8_t*>(text), 4);
  CHECK(smic::crc32(reinterpret_cast<const uint8_t*>(text) + 4, 5, first) == 0xCBF43926u);
}

TEST_CASE("varints are LEB128") {
  std::vector<uint8_t> out;
  smic::append_varint(out, 0);
  smic::append_varint(out, 127);
  smic::append_varint(out, 128);
  smic::append_varint(out, 300);
  CHECK(out == std::vector<uint8_t>{0x00, 0x7F, 0x80, 0x01, 0xAC, 0x02});
}

TEST_CASE("every truncation and every single flipped bit of a container is refused") {
  const auto good = smic::encode_container(smic::kCollectionMagic, 2, two_sections());
  for (std::size_t n = 0; n < good.size(); ++n) {
    CAPTURE(n);
    const std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    // Cut at a section boundary the rest is simply absent (uncounted file: fewer sections);
    // anywhere else it is a FormatError.
    if (n == 16 || n == 16 + 18) {
      CHECK(parse(cut).sections.size() == (n == 16 ? 0u : 1u));
    } else {
      CHECK_THROWS_AS(parse(cut), FormatError);
    }
  }
  std::size_t refused = 0, flips = 0;
  for (std::size_t byte = 0; byte < good.size(); ++byte) {
    if (byte >= 8 && byte < 16) continue;  // version, flags, count: the tests below
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = good;
      bad[byte] ^= static_cast<uint8_t>(1 << bit);
      ++flips;
      try {
        parse(bad);
      } catch (const FormatError&) {
        ++refused;
      }
    }
  }
  CHECK(refused == flips);
}

TEST_CASE("wrong magic, version 0 and a newer version are FormatErrors that say so") {
  auto bytes = smic::encode_container(smic::kCollectionMagic, 1, two_sections());
  CHECK_THROWS_WITH_AS(smic::parse_container(bytes.data(), bytes.size(), smic::kDictionaryMagic,
                                             "smic dictionary", "x.smicd"),
                       doctest::Contains("wrong magic"), FormatError);
  auto newer = bytes;
  newer[8] = static_cast<uint8_t>(smic::kFormatVersion + 1);
  CHECK_THROWS_WITH_AS(parse(newer), doctest::Contains("newer"), FormatError);
  auto zero = bytes;
  zero[8] = 0;
  CHECK_THROWS_AS(parse(zero), FormatError);
  CHECK_THROWS_AS(smic::encode_container(smic::kCollectionMagic, 0, two_sections()),
                  smic::InvalidArgument);
}

TEST_CASE("a counted container takes exactly its committed sections") {
  auto bytes = smic::encode_container(smic::kCollectionMagic, 1, two_sections());
  bytes[10] = smic::kFlagCommittedCount;
  bytes[12] = 1;  // one committed section: the second is an interrupted append
  auto view = parse(bytes);
  CHECK(view.sections.size() == 1);
  CHECK(view.end == 16 + 18);
  CHECK(view.torn_bytes == bytes.size() - view.end);
  bytes[12] = 3;  // claims more than it holds: truncated
  CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains("truncated"), FormatError);
}

TEST_CASE("a length beyond the end is refused before anything is allocated for it") {
  auto bytes = smic::encode_container(smic::kCollectionMagic, 1, two_sections());
  for (int i = 0; i < 8; ++i) bytes[20 + i] = 0xFF;  // HEAD claims 2^64 - 1 bytes
  CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains("claims"), FormatError);
}

TEST_CASE("atomic_write replaces a file whole, keeps its mode and leaves no temporary") {
  smic_test::TempDir dir;
  const std::string path = dir.file("a.bin");
  const std::vector<uint8_t> first = {1, 2, 3}, second(1000, 7);
  smic::atomic_write(path, first.data(), first.size());
  CHECK(smic::read_file(path) == first);
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  smic::atomic_write(path, second.data(), second.size());
  CHECK(smic::read_file(path) == second);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  smic::atomic_append(path, second, first);
  auto both = second;
  both.insert(both.end(), first.begin(), first.end());
  CHECK(smic::read_file(path) == both);
  // Nothing but the target in the folder.
  CHECK(::access((dir.path() + "/a.bin").c_str(), F_OK) == 0);
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("an AtomicFile not committed leaves the target untouched and no temporary") {
  smic_test::TempDir dir;
  const std::string path = dir.file("t.smic");
  const std::vector<uint8_t> original = {9, 9, 9};
  smic_test::write_bytes(path, original);
  {
    smic::AtomicFile file(path);
    const std::vector<uint8_t> junk(100, 1);
    file.write(junk);
    CHECK(file.size() == 100);
  }  // destroyed without commit
  CHECK(smic_test::read_bytes(path) == original);
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  {
    smic::AtomicFile file(path);
    file.write(std::vector<uint8_t>{1, 2, 3, 4});
    const uint8_t patch = 0xEE;
    file.write_at(1, &patch, 1);
    file.commit();
  }
  CHECK(smic_test::read_bytes(path) == std::vector<uint8_t>{1, 0xEE, 3, 4});
}

TEST_CASE("a streamed section is the same bytes as one encoded whole") {
  smic_test::TempDir dir;
  const std::string path = dir.file("s.bin");
  std::vector<uint8_t> prefix = {0xAA, 0xBB}, tail1(300, 3), tail2 = {4, 5};
  {
    smic::AtomicFile file(path);
    smic::StreamedSection section(file, smic::make_tag("ITEM"), prefix.size());
    section.data(tail1);
    section.data(tail2);
    section.end(prefix);
    file.commit();
  }
  std::vector<uint8_t> payload = prefix;
  payload.insert(payload.end(), tail1.begin(), tail1.end());
  payload.insert(payload.end(), tail2.begin(), tail2.end());
  CHECK(smic_test::read_bytes(path) ==
        smic::encode_sections({{smic::make_tag("ITEM"), payload}}));
}

TEST_CASE("read_file of a missing file is an IoError with its errno and name") {
  smic_test::TempDir dir;
  const std::string missing = dir.file("missing.smic");
  try {
    smic::read_file(missing);
    FAIL("no IoError");
  } catch (const smic::IoError& e) {
    CHECK(e.error_number() == ENOENT);
    CHECK(std::string(e.what()).find("missing.smic") != std::string::npos);
  }
}
