// Package testproc runs the child processes of multi-process tests: the
// test binary re-executed in a role.
//
// A test package registers its roles and hands its TestMain to Main:
//
//	func TestMain(m *testing.M) {
//		testproc.Register("producer", producerMain)
//		testproc.Main(m)
//	}
//
// A test starts a child with Command (or Start), which runs the test
// binary in that role (the role is passed in the environment, EnvRole, so
// a child's own re-executions of its binary keep it). Every child:
//
//   - is SIGKILLed if the test process dies (SysProcAttr.Pdeathsig), so a
//     failed or killed test leaves no process behind;
//   - has its output captured: both streams go to a buffer that is
//     written to the test log when the test fails (a test that reads the
//     child's standard output through StdoutPipe or Output gets that
//     stream, and the buffer keeps standard error);
//   - is killed and reaped when the test ends (t.Cleanup), unless it
//     exited before.
//
// Roles may also be commands: RegisterCommand makes the binary dispatch on
// its first argument, for a test binary that stands in for a program
// re-executing itself (the qmgr binary: a member starts its channel
// initiator as "<binary> chinit ...").
package testproc
