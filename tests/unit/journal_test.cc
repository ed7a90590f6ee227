#include "disk/journal.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <filesystem>
#include <fstream>

#include "unit/scratch_dir.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::MakeScratchDir("ferry-journal");
    fs::create_directories(root_ / "dest");
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string Dest() const { return (root_ / "dest").string(); }

  fs::path root_;
};

TEST_F(JournalTest, LivesBesideTheFolderAndRemembersWhatARunDid) {
  {
    std::unique_ptr<Journal> j;
    ASSERT_TRUE(
        Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
    EXPECT_EQ(j->path(), (root_ / ".dest.ferry-journal").string());
    j->RecordDone("https://h/a", Dest() + "/a", {5, 123, 77});
    j->RecordPart("https://h/b", Dest() + "/b", {4096, 10000, "\"e1\""});
    j->RecordPart("https://h/c", Dest() + "/c", {10, 20, ""});
    j->RecordDone("https://h/c", Dest() + "/c", {20, 1, 2});
    j->Flush(true);
  }
  std::unique_ptr<Journal> j;
  ASSERT_TRUE(Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
  EXPECT_EQ(j->earlier_done(), 2u);
  EXPECT_EQ(j->earlier_parts(), 1u);
  const Journal::Done* done = j->FindDone("https://h/a", Dest() + "/a");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->size, 5u);
  EXPECT_EQ(done->mtime_ns, 123);
  EXPECT_EQ(done->ino, 77u);
  const Journal::Part* part = j->FindPart("https://h/b", Dest() + "/b");
  ASSERT_NE(part, nullptr);
  EXPECT_EQ(part->length, 4096u);
  EXPECT_EQ(part->total, 10000u);
  EXPECT_EQ(part->etag, "\"e1\"");
  // The last record of a file wins: c was partial, then finished.
  EXPECT_EQ(j->FindPart("https://h/c", Dest() + "/c"), nullptr);
  EXPECT_NE(j->FindDone("https://h/c", Dest() + "/c"), nullptr);
  // Another URL for the same local file is another file.
  EXPECT_EQ(j->FindDone("https://other/a", Dest() + "/a"), nullptr);
  j->Remove();
  EXPECT_FALSE(fs::exists(root_ / ".dest.ferry-journal"));
}

TEST_F(JournalTest, ALineCutShortByAKillIsIgnored) {
  {
    std::ofstream out(root_ / ".dest.ferry-journal");
    out << R"({"k":"run","run":"run"})"
        << "\n"
        << R"({"k":"done","url":"u","local":"l","size":1,"mtime_ns":2,"ino":3})"
        << "\n"
        << R"({"k":"part","url":"u2","local":"l2","len)";
  }
  {
    std::unique_ptr<Journal> j;
    ASSERT_TRUE(
        Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
    EXPECT_EQ(j->earlier_done(), 1u);
    EXPECT_EQ(j->earlier_parts(), 0u);
    // A record after the cut line is not glued to it.
    j->RecordDone("u3", "l3", {1, 1, 1});
  }
  std::unique_ptr<Journal> j;
  ASSERT_TRUE(Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
  EXPECT_EQ(j->earlier_done(), 2u);
  EXPECT_NE(j->FindDone("u3", "l3"), nullptr);
}

TEST_F(JournalTest, AnotherRunStartsAfresh) {
  {
    std::unique_ptr<Journal> j;
    ASSERT_TRUE(
        Journal::Open(Dest(), Journal::Side::kDownload, "monday", &j).ok());
    j->RecordDone("u", "l", {1, 1, 1});
  }
  {
    std::unique_ptr<Journal> j;
    ASSERT_TRUE(
        Journal::Open(Dest(), Journal::Side::kDownload, "monday", &j).ok());
    EXPECT_EQ(j->earlier_done(), 1u);
  }
  // The manifest changed: nothing of Monday's run is trusted.
  std::unique_ptr<Journal> j;
  ASSERT_TRUE(
      Journal::Open(Dest(), Journal::Side::kDownload, "tuesday", &j).ok());
  EXPECT_EQ(j->earlier_done(), 0u);
  EXPECT_EQ(j->FindDone("u", "l"), nullptr);
}

TEST_F(JournalTest, RecordsOfTheWrongShapeAreIgnored) {
  {
    std::ofstream out(root_ / ".dest.ferry-journal");
    out << R"({"k":"run","run":"run"})"
        << "\n"
        << R"({"k":"done","url":"u","local":"l","size":"x"})"
        << "\n"
        << R"({"k":"part","url":"u","local":"l","etag":5})"
        << "\n"
        << "[1,2]\nnull\n"
        << R"({"k":"done","url":"v","local":"m","size":3,"mtime_ns":4,"ino":5})"
        << "\n";
  }
  std::unique_ptr<Journal> j;
  ASSERT_TRUE(Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
  EXPECT_EQ(j->earlier_done(), 1u);
  EXPECT_EQ(j->earlier_parts(), 0u);
  EXPECT_NE(j->FindDone("v", "m"), nullptr);
}

TEST_F(JournalTest, TwoRunsNeverShareAFolder) {
  std::unique_ptr<Journal> first;
  ASSERT_TRUE(
      Journal::Open(Dest(), Journal::Side::kDownload, "run", &first).ok());
  std::unique_ptr<Journal> second;
  Status s =
      Journal::Open(Dest() + "/", Journal::Side::kDownload, "run", &second);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUsage);
  EXPECT_NE(s.error().message().find("another ferry run"), std::string::npos);
}

TEST_F(JournalTest, AnUploadKeepsItsOwnBesideTheSourceOrNone) {
  std::unique_ptr<Journal> download;
  ASSERT_TRUE(
      Journal::Open(Dest(), Journal::Side::kDownload, "run", &download).ok());
  std::unique_ptr<Journal> upload;
  ASSERT_TRUE(
      Journal::Open(Dest(), Journal::Side::kUpload, "run", &upload).ok());
  ASSERT_NE(upload, nullptr);
  EXPECT_EQ(upload->path(), (root_ / ".dest.ferry-put-journal").string());
  upload.reset();
  // Never inside the source folder, whose files an upload may list.
  std::unique_ptr<Journal> none;
  ASSERT_TRUE(Journal::Open("/", Journal::Side::kUpload, "run", &none).ok());
  EXPECT_EQ(none, nullptr);
}

// The heap that glibc holds without handing it out: free chunks between
// live ones.
size_t HeldFreeBytes() {
  struct mallinfo2 info = ::mallinfo2();
  return info.arena - info.uordblks;
}

TEST_F(JournalTest, ReadingManyRecordsLeavesNoHolesInTheHeap) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer has its own allocator";
#endif
  // Records as a download of many files writes them: the same shape, one
  // per file.
  constexpr int kFiles = 100000;
  {
    std::unique_ptr<Journal> j;
    ASSERT_TRUE(
        Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
    for (int i = 0; i < kFiles; ++i) {
      std::string name = fmt::format("d{:03}/f{:07}.dat", i % 1000, i);
      j->RecordDone("https://127.0.0.1:8443/" + name, Dest() + "/" + name,
                    {14, 1796323463943997802, 4391949u + i});
    }
  }
  const size_t free_before = HeldFreeBytes();
  std::unique_ptr<Journal> j;
  ASSERT_TRUE(Journal::Open(Dest(), Journal::Side::kDownload, "run", &j).ok());
  ASSERT_EQ(j->earlier_done(), static_cast<size_t>(kFiles));
  // What one record left between the lookup's nodes once grew the heap by
  // some 700 bytes a record, ten times the lookup itself; a few megabytes
  // of slack are the allocator's own.
  const size_t free_after = HeldFreeBytes();
  const size_t grown = free_after > free_before ? free_after - free_before : 0;
  EXPECT_LT(grown, size_t{8} << 20)
      << "free heap grew from " << free_before << " to " << free_after
      << " bytes while " << kFiles << " records were read";
}

}  // namespace
}  // namespace ferry
