// The run's limits, witnessed from outside ferry: bytes per second by the
// wall clock, requests per second by the collection's access log.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"

namespace ferry::testing {
namespace {

constexpr double kMiB = 1 << 20;

class Limits : public CollectionTest {
 protected:
  // Runs ferry with `args` and returns the whole run's seconds, from
  // before the process started to after it ended.
  double Timed(const std::vector<std::string>& args, RunResult* result) {
    auto start = std::chrono::steady_clock::now();
    *result = RunFerry(args);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  }

  // A data set of large and small files, `large_mib` MiB in all for the
  // large ones; returns the manifest's lines and adds up the bytes.
  std::vector<std::string> Files(
      int large, size_t large_mib, int small,
      const std::function<void(const std::string&, const std::string&)>& place,
      uint64_t* bytes) {
    std::vector<std::string> lines;
    *bytes = 0;
    for (int i = 0; i < large; ++i) {
      lines.push_back("large/" + std::to_string(i));
      std::string data = RandomBytes((large_mib << 20) / large, 100 + i);
      *bytes += data.size();
      place(lines.back(), data);
    }
    for (int i = 0; i < small; ++i) {
      lines.push_back("small/" + std::to_string(i));
      std::string data = RandomBytes(40000 + 100 * i, 200 + i);
      *bytes += data.size();
      place(lines.back(), data);
    }
    return lines;
  }
};

// Large files on a few streams and small ones on many: every stream draws
// from the one limit, and the run's average stays under it.
TEST_F(Limits, MaxRateIsACeilingForDownloads) {
  uint64_t bytes = 0;
  std::vector<std::string> lines = Files(
      4, 64, 100,
      [this](const std::string& rel, const std::string& data) {
        Serve(rel, data);
      },
      &bytes);
  std::vector<std::string> args = GetArgs(Manifest(lines));
  args.insert(args.end(), {"--token-file", TestCollection().token_ro_file,
                           "--max-rate", "20M"});
  RunResult r;
  double seconds = Timed(args, &r);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  const double rate = static_cast<double>(bytes) / seconds;
  EXPECT_LE(rate, 20 * kMiB * 1.05) << seconds << " s";
  EXPECT_GE(rate, 20 * kMiB * 0.5) << seconds << " s";  // and came near
  EXPECT_NE(r.err.find("by --max-rate"), std::string::npos) << r.err;
}

TEST_F(Limits, MaxRateIsACeilingForUploads) {
  const fs::path local = work_ / "local";
  uint64_t bytes = 0;
  std::vector<std::string> lines = Files(
      3, 36, 50,
      [&local](const std::string& rel, const std::string& data) {
        WriteFile(local / rel, data);
      },
      &bytes);
  const std::string url = TestCollection().url + "/" + name_;
  RunResult r;
  double seconds =
      Timed({"put", Manifest(lines), "--from", local.string(), "--to", url,
             "--ca-file", TestCollection().ca_file, "--token-file",
             TestCollection().token_rw_file, "--max-rate", "20M"},
            &r);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& rel : lines) {
    EXPECT_TRUE(ReadFile(src_ / rel) == ReadFile(local / rel)) << rel;
  }
  const double rate = static_cast<double>(bytes) / seconds;
  EXPECT_LE(rate, 20 * kMiB * 1.05) << seconds << " s";
  EXPECT_GE(rate, 20 * kMiB * 0.5) << seconds << " s";
  EXPECT_NE(r.err.find("by --max-rate"), std::string::npos) << r.err;
}

TEST_F(Limits, MaxRateMustBeARate) {
  for (const char* bad : {"fast", "20MB", "-5M"}) {
    std::vector<std::string> args = GetArgs(Manifest({"a"}));
    args.insert(args.end(), {"--max-rate", bad});
    RunResult r = RunFerry(args);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("20M"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace ferry::testing
