package sandbox

import ("os"; "testing"; "time")

func TestZZHold(t *testing.T) {
	if os.Getenv("HOLD") == "" { t.Skip() }
	m := Start(t)
	os.WriteFile("/tmp/hold.pid", []byte(string(rune('0'))), 0o644)
	os.WriteFile("/tmp/hold.pid", []byte(itoa(m.PID())), 0o644)
	for i := 0; i < 1200; i++ {
		if _, err := os.Stat("/tmp/hold.flag"); err != nil { return }
		time.Sleep(time.Second)
	}
}
func itoa(i int) string { return fmtInt(i) }
func fmtInt(i int) string { s := ""; for i > 0 { s = string(rune('0'+i%10)) + s; i /= 10 }; return s }
