package hl7v2_test

import (
	"testing"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/hl7v2"
)

func BenchmarkParse(b *testing.B) {
	for _, c := range []struct{ name, file string }{
		{"oximeter", "ipf_valid-oximeter-continua-wan.hl7v2"},
		{"pcd01-max", "ipf_valid-pcd01-MaximumRequest2.hl7"},
	} {
		data := readData(b, c.file)
		cat := codes.New()
		b.Run(c.name+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := hl7v2.Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parse+decode+ack", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				m, err := hl7v2.Parse(data)
				if err != nil {
					b.Fatal(err)
				}
				_, err = hl7v2.DecodeORU(m, cat)
				_ = hl7v2.Ack(m, err, hl7v2.AckOptions{}).Encode()
			}
		})
	}
}
