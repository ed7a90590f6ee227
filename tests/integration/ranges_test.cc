// Large downloads in ranges on several streams at once, against the local
// collection, and through the chaos proxy where a range must fail.
#include <algorithm>
#include <csignal>
#include <map>
#include <string>
#include <vector>

#include "ferry/digest.h"
#include "harness.h"

namespace ferry::testing {
namespace {

using Json = nlohmann::json;

class Ranges : public CollectionTest {
 protected:
  static std::string Hex(const std::string& data) {
    return HashBuffer(data.data(), data.size()).ToHex();
  }
  // A manifest line with the size that makes a file go in ranges.
  static std::string Line(const std::string& path, const std::string& data,
                          const std::string& digest = "") {
    return path + "\t" + std::to_string(data.size()) + "\t" +
           (digest.empty() ? Hex(data) : digest);
  }
  RunResult Get(const std::string& manifest,
                std::vector<std::string> extra = {}) {
    std::vector<std::string> args = GetArgs(manifest);
    args.insert(args.end(), {"--token-file", TestCollection().token_ro_file,
                             "--split-above", "4M", "--range-size", "1M"});
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args);
  }
  // The Range headers the collection saw for `file`, by first byte.
  std::map<uint64_t, std::string> RangesOf(const std::string& file) const {
    std::map<uint64_t, std::string> ranges;
    for (const Request& q : Requests()) {
      if (q.method != "GET" || q.target.find("/" + file) == std::string::npos ||
          q.range.empty()) {
        continue;
      }
      ranges[std::stoull(q.range.substr(q.range.find('=') + 1))] = q.range;
    }
    return ranges;
  }
  bool NoPartialFiles() const {
    for (const std::string& name : ListTree(dest_)) {
      if (name.find(".ferry-part") != std::string::npos) return false;
    }
    return true;
  }
};

TEST_F(Ranges, ALargeFileArrivesInRangesAndVerified) {
  const std::string data = RandomBytes((9u << 20) + 12345, 1);
  const std::string small = RandomBytes(3u << 20, 2);  // below the threshold
  Serve("big.bin", data);
  Serve("small.bin", small);
  RunResult r =
      Get(Manifest({Line("big.bin", data), Line("small.bin", small)}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  // Ten ranges of 1 MiB, the last one short, each asked for once.
  std::map<uint64_t, std::string> ranges = RangesOf("big.bin");
  ASSERT_EQ(ranges.size(), 10u);
  EXPECT_EQ(ranges.begin()->second, "bytes=0-1048575");
  EXPECT_EQ(ranges.rbegin()->second,
            "bytes=9437184-" + std::to_string(data.size() - 1));
  EXPECT_TRUE(RangesOf("small.bin").empty());
  for (const Json& line : ReadReport(work_ / "report.jsonl")) {
    EXPECT_EQ(line["status"], "ok") << line;
    if (line["path"] == "big.bin") {
      EXPECT_EQ(line["xxh128"], Hex(data));
      EXPECT_EQ(line["bytes"], data.size());
    }
  }
}

// Ranges are for a file that would otherwise be alone on its stream: while
// other transfers fill the connections, large files go whole.
TEST_F(Ranges, LargeFilesAmongBusyConnectionsGoWhole) {
  std::vector<std::string> lines;
  for (int i = 0; i < 4; ++i) {
    const std::string data = RandomBytes(5u << 20, 20 + i);
    Serve("f" + std::to_string(i), data);
    lines.push_back(Line("f" + std::to_string(i), data));
  }
  RunResult r = Get(Manifest(lines), {"--connections", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(RangesOf("f0").size(), 5u) << "the first file met idle connections";
  int whole = 0;
  for (int i = 1; i < 4; ++i)
    whole += RangesOf("f" + std::to_string(i)).empty();
  EXPECT_GE(whole, 1) << "every large file went in ranges";
}

// O_DIRECT writes whole blocks: a size that is not a multiple of one is
// padded on disk and cut back before the hash and the rename.
TEST_F(Ranges, WrittenPastThePageCacheTheFileIsExact) {
  const std::string data = RandomBytes((5u << 20) + 4097, 7);
  Serve("odd.bin", data);
  RunResult r = Get(Manifest({Line("odd.bin", data)}), {"--direct"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(fs::file_size(dest_ / "odd.bin"), data.size());
}

TEST_F(Ranges, ACollectionThatIgnoresRangesGivesTheWholeFile) {
  const std::string data = RandomBytes(6u << 20, 3);
  Serve("f", data);
  std::vector<std::string> args = GetArgs(Manifest({Line("f", data)}));
  *(std::find(args.begin(), args.end(), "--from") + 1) =
      TestCollection().url + "/_noranges/" + name_;
  args.insert(args.end(), {"--token-file", TestCollection().token_ro_file,
                           "--split-above", "4M", "--range-size", "1M"});
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("ignores Range"), std::string::npos) << r.err;
  EXPECT_TRUE(NoPartialFiles());
}

TEST_F(Ranges, AWrongDigestLeavesNothingBehind) {
  const std::string data = RandomBytes(5u << 20, 4);
  Serve("f", data);
  RunResult r = Get(Manifest({Line("f", data, Hex("something else"))}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("differs from the manifest"), std::string::npos)
      << r.err;
  EXPECT_TRUE(ListTree(dest_).empty() ||
              (ListTree(dest_).size() == 1 &&
               ListTree(dest_)[0].find("ferry-journal") != std::string::npos))
      << ListTree(dest_).size();
}

// One range is cut halfway: only that range is asked for again.
TEST_F(Ranges, ACutRangeIsFetchedAgainAlone) {
  const std::string data = RandomBytes(6u << 20, 5);
  Serve("f", data);
  ChaosProxy proxy(Json::array({{{"path", "/" + name_ + "/f$"},
                                 {"method", "GET"},
                                 {"fault", "cut"},
                                 {"after", 300000},
                                 {"times", 1}}}));
  ASSERT_FALSE(proxy.url().empty());
  std::vector<std::string> args = GetArgs(Manifest({Line("f", data)}));
  *(std::find(args.begin(), args.end(), "--from") + 1) =
      proxy.url() + "/" + name_;
  args.insert(args.end(),
              {"--token-file", TestCollection().token_ro_file, "--split-above",
               "4M", "--range-size", "1M", "--backoff", "0.05"});
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(proxy.Stats()["faults_injected"], 1);
  // Six ranges, one of them twice.
  std::vector<std::string> asked;
  for (const Request& q : Requests()) {
    if (q.method == "GET") asked.push_back(q.range);
  }
  std::sort(asked.begin(), asked.end());
  EXPECT_EQ(asked.size(), 7u);
  EXPECT_EQ(std::adjacent_find(asked.begin(), asked.end()) != asked.end(),
            true);
  EXPECT_TRUE(NoPartialFiles());
}

TEST_F(Ranges, AnInterruptedSplitLeavesNoFileUnderItsFinalName) {
  const std::string data = RandomBytes(200u << 20, 6);
  Serve("f", data);
  std::vector<std::string> args = GetArgs(Manifest({Line("f", data)}));
  args.insert(args.end(), {"--token-file", TestCollection().token_ro_file,
                           "--max-rate", "40M"});
  auto started = [this] {
    for (const std::string& name : ListTree(dest_)) {
      if (name.find(".ferry-part") != std::string::npos) return true;
    }
    return false;
  };
  RunResult r = RunFerryAndSignal(args, started, SIGINT);
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << r.err;
  EXPECT_FALSE(fs::exists(dest_ / "f"));
  EXPECT_TRUE(NoPartialFiles());
  // The same command then fetches it.
  args.erase(std::find(args.begin(), args.end(), "--max-rate"), args.end());
  r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
}

}  // namespace
}  // namespace ferry::testing
