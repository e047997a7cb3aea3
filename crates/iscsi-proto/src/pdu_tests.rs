//! PDU codec tests: examples and property tests (round trips, no panics).

use super::*;

#[test]
fn opcode_debug_names_unknown_values() {
    assert_eq!(format!("{:?}", Opcode::SCSI_COMMAND), "SCSI_COMMAND");
    assert_eq!(format!("{:?}", Opcode(0x1c)), "Opcode(0x1c)");
    assert_eq!(
        Request::parse(&Bhs::new(Opcode(0x1c))),
        Request::Unknown(Opcode(0x1c))
    );
}

#[test]
fn scsi_command_round_trip() {
    let cmd = ScsiCommand {
        immediate: true,
        final_bit: true,
        read: true,
        write: false,
        attr: 1,
        lun: lun_to_sam(3),
        itt: 0x1234,
        edtl: 4096,
        cmd_sn: 7,
        exp_stat_sn: 9,
        cdb: [0x28, 0, 0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0],
    };
    let b = cmd.encode();
    assert_eq!(Request::parse(&b), Request::ScsiCommand(cmd));
}

#[test]
fn data_segment_length_is_24_bits() {
    let mut b = Bhs::new(Opcode::NOP_OUT);
    b.set_data_segment_len(0x00ab_cdef);
    assert_eq!(b.data_segment_len(), 0x00ab_cdef);
    assert_eq!(b.0[4], 0);
    b.set_data_segment_len(u32::MAX);
    assert_eq!(b.data_segment_len(), 0x00ff_ffff);
}

#[test]
fn trailing_length_counts_padding_and_digests() {
    let mut b = Bhs::new(Opcode::SCSI_DATA_OUT);
    b.set_data_segment_len(5);
    assert_eq!(b.trailing_len(false, false), 8);
    assert_eq!(b.trailing_len(true, true), 16);
    b.set_data_segment_len(0);
    assert_eq!(b.trailing_len(true, true), 4);
    b.0[4] = 2;
    assert_eq!(b.trailing_len(false, false), 8);
}

#[test]
fn login_round_trip() {
    let h = LoginRequestHeader {
        transit: true,
        cont: false,
        csg: Stage(1),
        nsg: Stage(3),
        version_max: 0,
        version_min: 0,
        isid: [0x80, 1, 2, 3, 4, 5],
        tsih: 0,
        itt: 1,
        cid: 0,
        cmd_sn: 1,
        exp_stat_sn: 0,
    };
    let b = encode_login_request(&h, 10);
    assert_eq!(b.data_segment_len(), 10);
    assert_eq!(Request::parse(&b), Request::Login(h));
}

#[test]
fn residual_computation() {
    assert_eq!(Residual::compute(512, 512), Residual::None);
    assert_eq!(Residual::compute(1024, 512), Residual::Underflow(512));
    assert_eq!(Residual::compute(512, 1024), Residual::Overflow(512));
    assert_eq!(Residual::compute(0, u64::MAX), Residual::Overflow(u32::MAX));
}

#[test]
fn response_flags() {
    let r = ScsiResponse {
        response: 0,
        status: 2,
        itt: 5,
        exp_data_sn: 0,
        residual: Residual::Overflow(7),
    };
    let b = r.encode(20);
    assert_eq!(b.0[1], 0x84);
    assert_eq!(b.0[3], 2);
    assert_eq!(b.u32_at(44), 7);
}

#[test]
fn serial_number_arithmetic() {
    assert!(sn_lt(1, 2));
    assert!(sn_lt(u32::MAX, 0));
    assert!(!sn_lt(0, u32::MAX));
    assert!(sn_le(5, 5));
}

#[test]
fn lun_encoding() {
    assert_eq!(lun_to_sam(0), 0);
    assert_eq!(lun_from_sam(lun_to_sam(5)), Some(5));
    assert_eq!(lun_from_sam(lun_to_sam(300)), Some(300));
    assert_eq!(lun_from_sam(0x0001_0000_0000_0001), None);
}

#[test]
fn extended_cdb_ahs() {
    let cmd = ScsiCommand::parse(&Bhs::new(Opcode::SCSI_COMMAND));
    // AHSLength 17 (reserved byte + 16 extra CDB bytes), type 1.
    let mut ahs = vec![0, 17, 1, 0];
    ahs.extend_from_slice(&[0xaa; 16]);
    while ahs.len() % 4 != 0 {
        ahs.push(0);
    }
    let mut out = Vec::new();
    assert_eq!(full_cdb(&cmd, &ahs, &mut out), Some(32));
    assert_eq!(&out[16..], &[0xaa; 16]);
    assert_eq!(full_cdb(&cmd, &[0, 40, 1, 0], &mut out), None);
}

// Property tests: every field value survives encode -> parse, and parsing any
// 48 bytes neither panics nor loses the fields the target acts on.

use proptest::prelude::*;

fn any_bhs() -> impl Strategy<Value = Bhs> {
    any::<[u8; BHS_LEN]>().prop_map(Bhs)
}

prop_compose! {
    fn any_scsi_command()(
        immediate in any::<bool>(),
        final_bit in any::<bool>(),
        read in any::<bool>(),
        write in any::<bool>(),
        attr in 0u8..8,
        lun in any::<u64>(),
        itt in any::<u32>(),
        edtl in any::<u32>(),
        cmd_sn in any::<u32>(),
        exp_stat_sn in any::<u32>(),
        cdb in any::<[u8; 16]>(),
    ) -> ScsiCommand {
        ScsiCommand {
            immediate, final_bit, read, write, attr, lun, itt, edtl, cmd_sn, exp_stat_sn, cdb,
        }
    }
}

prop_compose! {
    fn any_data_out()(
        final_bit in any::<bool>(),
        lun in any::<u64>(),
        itt in any::<u32>(),
        ttt in any::<u32>(),
        exp_stat_sn in any::<u32>(),
        data_sn in any::<u32>(),
        buffer_offset in any::<u32>(),
        data_len in 0u32..(1 << 24),
    ) -> DataOut {
        DataOut { final_bit, lun, itt, ttt, exp_stat_sn, data_sn, buffer_offset, data_len }
    }
}

prop_compose! {
    fn any_login_request()(
        transit in any::<bool>(),
        cont in any::<bool>(),
        csg in 0u8..4,
        nsg in 0u8..4,
        version_max in any::<u8>(),
        version_min in any::<u8>(),
        isid in any::<[u8; 6]>(),
        tsih in any::<u16>(),
        itt in any::<u32>(),
        cid in any::<u16>(),
        cmd_sn in any::<u32>(),
        exp_stat_sn in any::<u32>(),
    ) -> LoginRequestHeader {
        LoginRequestHeader {
            transit, cont, csg: Stage(csg), nsg: Stage(nsg), version_max, version_min, isid,
            tsih, itt, cid, cmd_sn, exp_stat_sn,
        }
    }
}

proptest! {
    #[test]
    fn scsi_command_encode_parse_round_trip(cmd in any_scsi_command()) {
        let b = cmd.encode();
        prop_assert_eq!(b.opcode(), Opcode::SCSI_COMMAND);
        prop_assert_eq!(b.data_segment_len(), 0);
        prop_assert_eq!(b.ahs_len(), 0);
        prop_assert_eq!(Request::parse(&b), Request::ScsiCommand(cmd));
    }

    #[test]
    fn data_out_encode_parse_round_trip(d in any_data_out()) {
        let b = d.encode();
        prop_assert_eq!(b.opcode(), Opcode::SCSI_DATA_OUT);
        prop_assert_eq!(b.data_segment_len(), d.data_len);
        prop_assert_eq!(Request::parse(&b), Request::DataOut(d));
    }

    #[test]
    fn login_request_encode_parse_round_trip(
        h in any_login_request(),
        data_len in 0u32..(1 << 24),
    ) {
        let b = encode_login_request(&h, data_len);
        prop_assert_eq!(b.opcode(), Opcode::LOGIN_REQUEST);
        prop_assert!(b.immediate());
        prop_assert_eq!(b.data_segment_len(), data_len);
        prop_assert_eq!(Request::parse(&b), Request::Login(h));
    }

    #[test]
    fn login_response_encode_parse_round_trip(
        h in any_login_request(),
        status in any::<u16>(),
        version_active in any::<u8>(),
        data_len in 0u32..(1 << 24),
    ) {
        let r = LoginResponseHeader {
            transit: h.transit,
            cont: h.cont,
            csg: h.csg,
            nsg: h.nsg,
            version_max: h.version_max,
            version_active,
            isid: h.isid,
            tsih: h.tsih,
            itt: h.itt,
            status: LoginStatus(status),
        };
        let b = encode_login_response(&r, data_len);
        prop_assert_eq!(b.data_segment_len(), data_len);
        prop_assert_eq!(parse_login_response(&b), r);
    }

    /// Any 48 bytes parse; re-encoding a parsed request and parsing it again
    /// gives the same request (the encoders keep every field `parse` reads).
    #[test]
    fn parse_never_panics_and_is_stable(b in any_bhs()) {
        let req = Request::parse(&b);
        let _ = format!("{req:?} {b:?}");
        let len = b.trailing_len(false, false);
        prop_assert!(len >= b.ahs_len() + b.data_segment_len() as usize);
        prop_assert!(b.trailing_len(true, true) >= len + 4);
        let mut cdb = Vec::new();
        match &req {
            Request::ScsiCommand(cmd) => {
                prop_assert_eq!(Request::parse(&cmd.encode()), req.clone());
                prop_assert_eq!(full_cdb(cmd, &[], &mut cdb), Some(16));
            }
            Request::DataOut(d) => {
                prop_assert_eq!(d.data_len, b.data_segment_len());
                prop_assert_eq!(Request::parse(&d.encode()), req.clone());
            }
            Request::Login(h) => {
                let again = encode_login_request(h, b.data_segment_len());
                prop_assert_eq!(Request::parse(&again), req.clone());
            }
            Request::Unknown(op) => prop_assert_eq!(*op, b.opcode()),
            _ => {}
        }
    }

    /// `full_cdb` never panics on an arbitrary AHS area, and when it accepts
    /// one the CDB starts with the 16 bytes of the BHS.
    #[test]
    fn full_cdb_never_panics(
        cmd in any_scsi_command(),
        ahs in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut out = Vec::new();
        if let Some(n) = full_cdb(&cmd, &ahs, &mut out) {
            prop_assert_eq!(n, out.len());
            prop_assert!((16..=16 + ahs.len()).contains(&n));
            prop_assert_eq!(&out[..16], &cmd.cdb[..]);
        }
    }
}
