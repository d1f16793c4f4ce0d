//! `calseg-previous-release`: builds calseg-server and calseg-agent of the previous release
//! (`calseg_tests::previous_release`) under this program's cargo target directory, unless an
//! earlier run did, and prints their paths. scripts/test.sh runs it before the tests, so the
//! build (minutes) does not run beside them.

use std::process::ExitCode;

fn main() -> ExitCode {
    // This program lives in target/<profile>/.
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()));
    let Some(target) = target else {
        eprintln!("calseg-previous-release: cannot tell which target directory it runs from");
        return ExitCode::FAILURE;
    };
    match calseg_tests::previous_release::binaries_under(&target) {
        Ok(release) => {
            println!("{}\n{}", release.server.display(), release.agent.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("calseg-previous-release: {error:#}");
            ExitCode::FAILURE
        }
    }
}
